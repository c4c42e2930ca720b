"""How hapilot starts moto's server: moto's own `main`, after two changes to how much CPU it
spends, neither to what it answers.

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
"""

import gc
import hashlib
import os
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

sys.exit(main())
