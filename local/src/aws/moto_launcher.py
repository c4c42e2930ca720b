"""How hapilot starts moto's server: moto's own `main`, after changes to how much CPU it spends
(1 to 4, 6 to 9) and one to what it answers (5: where moto is kinder than AWS).

1. Python's cyclic collector. moto keeps every resource it serves as live objects; at the default
   thresholds the collector took about a quarter of moto's CPU in the e2e tests (perf). What the
   imports made is frozen and the young generation is collected a hundred times less often.
2. Step Functions definition checks. CreateStateMachine and UpdateStateMachine parse the whole
   definition with moto's ANTLR grammar in pure Python (about 0.1 s of CPU per definition, a
   third of moto's CPU while worlds are built), and every world deploys the same definitions.
   A definition that once parsed cleanly is remembered in HAPILOT_ASL_CHECKED (a directory
   inside moto's venv, so a different moto starts empty): the same text is accepted without
   parsing it again. Anything else, and every refusal, goes through moto's own check.
3. Finding a request's service. For every request whose host is not a known endpoint, moto's
   dispatcher lists its own package directory (`list_of_moto_modules`: a listdir and an isdir
   per entry) to see whether the host names a service: about a tenth of moto's CPU in the e2e
   tests (py-spy). The directory does not change while moto runs: listed once.
4. Starting. Importing moto and building the apps of the services our worlds call takes about
   1.5 s of CPU per server, and a test process starts one server per world. With an argument
   `--zygote`, this script does that once and then forks one server per request: it reads
   `{"port", "moto_port", "log"}` lines on stdin and answers `{"pid"}` lines on stdout. A server
   dies with the zygote (PR_SET_PDEATHSIG), as the zygote dies with the process that started it;
   the zygote never serves a request itself, so every server starts with nothing in it.
5. GetExecutionHistory pages as the Step Functions API Reference says: at most `maxResults`
   events (0 or absent: 100; more than 1000 is a ValidationException), oldest first or, with
   `reverseOrder`, newest first, and a `nextToken` while more remain (a token that is not one
   we gave is InvalidToken). moto answers the whole history at once, whatever is asked: a
   client that ignores `nextToken` would see every event here and only the first hundred on
   AWS; and a follower that reads newest first got the whole history at every look (about 0.1 s
   of CPU each, the largest single request cost in the e2e tests). With `includeExecutionData`
   false, events come without their `input` and `output`.
6. Step Functions executions parse their definition with the ANTLR grammar at every start
   (about 8 % of moto's CPU in the e2e tests, py-spy): a server keeps the parse tree of each
   definition that parsed cleanly and builds every execution's program from it afresh.
7. A Lambda task builds a new boto3 client for every invocation (loading the service model
   and listing botocore's data directory: about 6 %): a server keeps one per region and
   service (botocore clients are thread-safe) unless the state asks for its own credentials.
8. The request log: werkzeug writes a line per request (about 4 %); a server writes only the
   requests that failed (status 400 and above), which are the ones a failing test looks for.
9. Serializing a response, moto asks six alias providers, for every member of every structure
   of every answer, which attribute of its object holds the member: half of the CPU of a
   GetExecutionHistory page and a third of a DescribeAlarms (measured against this launcher
   without it, 25 events: 22 ms to 11 ms; 20 alarms: 10 ms to 6 ms). The answer depends only
   on the object's class, the member's shape, its parent shape and its name: asked once. The
   responses of every service the worlds call were compared with and without it: identical.
"""

import copy
import ctypes
import gc
import hashlib
import json
import os
import signal
import sys

from moto import backends
from moto.server import main
from moto.stepfunctions.parser import models as stepfunctions

moto_modules = tuple(backends.list_of_moto_modules())
backends.list_of_moto_modules = lambda: moto_modules

gc.freeze()
gc.set_threshold(70000, 20, 100)

checked = os.environ.get("HAPILOT_ASL_CHECKED")
if checked:
    os.makedirs(checked, exist_ok=True)
    moto_check = stepfunctions.StepFunctionsParserBackend._validate_definition

    def check_once(definition):
        mark = os.path.join(checked, hashlib.sha256(definition.encode()).hexdigest())
        if os.path.exists(mark):
            return
        moto_check(definition=definition)
        with open(mark, "w"):
            pass

    stepfunctions.StepFunctionsParserBackend._validate_definition = staticmethod(check_once)

# 5. GetExecutionHistory in pages, as AWS answers it.
from moto.core.responses import ActionResult
from moto.stepfunctions import exceptions as sfn_errors
from moto.stepfunctions.responses import StepFunctionResponse

HISTORY_TOKEN = "hapilot-history"


def history_events(backend, arn):
    """The execution's events, not copied: moto's own answer deep-copies the whole history at
    every call, and only a page of it is served. Events are appended, never changed."""
    execution = backend.describe_execution(execution_arn=arn)  # refuses an unknown execution
    manager = getattr(getattr(getattr(execution, "exec_worker", None), "env", None), "event_manager", None)
    if manager is None or not hasattr(manager, "_history_event_list"):
        return backend.get_execution_history(arn).get("events") or []
    with manager._mutex:
        return list(manager._history_event_list)


def paged_execution_history(self):
    arn = self._get_param("executionArn")
    size = int(self._get_param("maxResults") or 0)
    if not 0 <= size <= 1000:
        raise sfn_errors.ValidationException(
            f"1 validation error detected: Value '{size}' at 'maxResults' failed to satisfy "
            "constraint: Member must have value less than or equal to 1000"
        )
    size = size or 100
    newest_first = bool(self._get_param("reverseOrder"))
    events = history_events(self.stepfunction_backend, arn)
    if newest_first:
        events = events[::-1]
    token = self._get_param("nextToken")
    if token:
        # Our token names the direction and the last event id given; anything else is refused.
        parts = token.split(":")
        if (
            len(parts) != 3
            or parts[0] != HISTORY_TOKEN
            or parts[1] != str(int(newest_first))
            or not parts[2].isdigit()
        ):
            raise sfn_errors.InvalidToken()
        last = int(parts[2])
        events = [e for e in events if (e["id"] < last if newest_first else e["id"] > last)]
    page = copy.deepcopy(events[:size])
    if self._get_param("includeExecutionData") is False:
        # "whether execution data (input or output of a history event) is returned"
        for event in page:
            for key, details in event.items():
                if key.endswith("EventDetails") and isinstance(details, dict):
                    details.pop("input", None)
                    details.pop("output", None)
    output = {"events": page}
    if len(events) > size:
        output["nextToken"] = f"{HISTORY_TOKEN}:{int(newest_first)}:{page[-1]['id']}"
    return ActionResult(output)


StepFunctionResponse.get_execution_history = paged_execution_history

# 6. One parse tree per definition and server.
from moto.stepfunctions.parser.asl.parse import asl_parser

parse_trees = {}
moto_parse = asl_parser.AmazonStateLanguageParser.parse


def parse_once(definition):
    tree = parse_trees.get(definition)
    if tree is None:
        program, tree = moto_parse(definition)  # a definition that does not parse raises
        parse_trees[definition] = tree
        return program, tree
    return asl_parser.Preprocessor().visit(tree), tree


asl_parser.AmazonStateLanguageParser.parse = staticmethod(parse_once)

# 7. One boto3 client per region and service and server, for the states' calls.
import threading

from moto.stepfunctions.parser.asl.component.state.exec.state_task import lambda_eval_utils
from moto.stepfunctions.parser.asl.utils import boto_client as sfn_boto

moto_client_for = sfn_boto.boto_client_for
clients = {}
clients_lock = threading.Lock()


def client_once(region, service, state_credentials=None):
    if state_credentials is not None or sfn_boto.botocore_stubber.enabled:
        return moto_client_for(region, service, state_credentials)
    key = (region, service, os.environ.get("MOTO_PORT"))
    with clients_lock:
        client = clients.get(key)
        if client is None:
            client = clients[key] = moto_client_for(region, service, state_credentials)
    return client


for module in list(sys.modules.values()):
    if getattr(module, "boto_client_for", None) is moto_client_for:
        module.boto_client_for = client_once
assert lambda_eval_utils.boto_client_for is client_once


# 8. Only failed requests in the log.
def log_failures(request_handler):
    moto_log_request = request_handler.log_request

    def log_request(self, code="-", size="-"):
        status = getattr(code, "value", code)
        if isinstance(status, int) and status < 400:
            return
        moto_log_request(self, code, size)

    request_handler.log_request = log_request


# 9. Which attribute holds a response member.
from moto.core import serialize as moto_serialize

aliases = {}
moto_possible_keys = moto_serialize.XFormedAttributePicker.get_possible_keys


def possible_keys_once(self, context):
    # What the alias providers answer depends on the object's class (its Meta aliases, its
    # name), the member's shape and its parent shape (botocore caches shapes) and the key.
    shape = context.shape
    cache_key = (
        id(self.alias_providers), type(context.obj), shape, getattr(shape, "parent", None), context.key,
    )
    keys = aliases.get(cache_key)
    if keys is None:
        keys = aliases[cache_key] = tuple(moto_possible_keys(self, context))
    return keys


moto_serialize.XFormedAttributePicker.get_possible_keys = possible_keys_once


# The services the local worlds call (moto's module names); the rest is built when first called.
WARM_SERVICES = (
    "cloudwatch", "events", "iam", "route53", "s3", "scheduler", "secretsmanager", "sns",
    "sqs", "stepfunctions", "sts",
)


def zygote():
    from moto.moto_server.werkzeug_app import (
        DomainDispatcherApplication,
        MotoRequestHandler,
        create_backend_app,
    )
    from werkzeug.serving import run_simple

    log_failures(MotoRequestHandler)
    apps = {}
    for service in WARM_SERVICES:
        try:
            apps[service] = create_backend_app(service)
        except Exception as e:  # a service this moto lacks is built (and refused) on first use
            print(f"zygote: not prebuilt: {service}: {e}", file=sys.stderr, flush=True)
    gc.collect()
    gc.freeze()
    # Servers are reaped by the kernel: no zombie stands for a server that exited.
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    libc = ctypes.CDLL(None, use_errno=True)
    for line in sys.stdin:
        request = json.loads(line)
        pid = os.fork()
        if pid == 0:
            try:
                signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
                if os.getppid() == 1:
                    os._exit(1)
                log = os.open(request["log"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
                null = os.open(os.devnull, os.O_RDONLY)
                os.dup2(null, 0)
                os.dup2(log, 1)
                os.dup2(log, 2)
                os.environ["MOTO_PORT"] = str(request["moto_port"])
                app = DomainDispatcherApplication(create_backend_app)
                app.debug = True
                app.app_instances.update(apps)
                run_simple(
                    "127.0.0.1",
                    int(request["port"]),
                    app,
                    threaded=True,
                    request_handler=MotoRequestHandler,
                )
            finally:
                os._exit(1)
        print(json.dumps({"pid": pid}), flush=True)


if sys.argv[1:] == ["--zygote"]:
    zygote()
else:
    sys.exit(main())
