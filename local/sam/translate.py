"""Translates an AWS SAM template into plain CloudFormation with AWS's own SAM transform
(the `aws-sam-translator` package that `sam deploy` uses), offline.

Usage: translate.py TEMPLATE REGION > translated.json

Local `CodeUri` / `DefinitionUri` paths are replaced by `s3://` placeholders first, as
`sam package` would; a state machine's definition file stays findable as the placeholder's
key (relative to the template). IAM managed-policy names resolve to nothing (no AWS account
to ask); hapilot's templates use inline statements and SAM policy templates only.
"""

import json
import os
import sys

PLACEHOLDER_BUCKET = "hapilot-local-artifacts"


def main():
    template_path, region = sys.argv[1], sys.argv[2]
    os.environ["AWS_DEFAULT_REGION"] = region
    from samtranslator.translator.transform import transform
    from samtranslator.yaml_helper import yaml_parse

    class NoManagedPolicies:
        def load(self):
            return {}

    with open(template_path, encoding="utf-8") as f:
        doc = yaml_parse(f.read())
    function_globals = (doc.get("Globals") or {}).get("Function") or {}
    if isinstance(function_globals.get("CodeUri"), str):
        function_globals["CodeUri"] = "s3://%s/%s" % (PLACEHOLDER_BUCKET, function_globals["CodeUri"])
    for resource in (doc.get("Resources") or {}).values():
        props = resource.get("Properties") or {}
        kind = resource.get("Type")
        if kind == "AWS::Serverless::Function" and isinstance(props.get("CodeUri"), str):
            props["CodeUri"] = "s3://%s/%s" % (PLACEHOLDER_BUCKET, props["CodeUri"])
        if kind == "AWS::Serverless::StateMachine" and isinstance(props.get("DefinitionUri"), str):
            props["DefinitionUri"] = "s3://%s/%s" % (PLACEHOLDER_BUCKET, props["DefinitionUri"])
    translated = transform(doc, {}, NoManagedPolicies())
    json.dump(translated, sys.stdout, indent=1, sort_keys=True, default=str)


if __name__ == "__main__":
    main()
