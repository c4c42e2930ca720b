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
4. Starting. Importing moto and building the apps of the services our worlds call takes about
   1.5 s of CPU per server, and a test process starts one server per world. With an argument
   `--zygote`, this script does that once and then forks one server per request: it reads
   `{"port", "moto_port", "log"}` lines on stdin and answers `{"pid"}` lines on stdout. A server
   dies with the zygote (PR_SET_PDEATHSIG), as the zygote dies with the process that started it;
   the zygote never serves a request itself, so every server starts with nothing in it.
"""

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
