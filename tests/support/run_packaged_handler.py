"""Invokes a handler from an unpacked Lambda artifact, with only what the runtime provides beside it.

Run with `python -S -E`: no site-packages, no PYTHONPATH; sys.path gets the artifact's folder
(Lambda's /var/task) and a folder holding the runtime's own boto3 and its dependencies. Prints
one JSON line: the handler's answer and where each named module was imported from.

    python -S -E run_packaged_handler.py TASK RUNTIME HANDLER EVENT.json MODULE...
"""

import importlib
import json
import sys
import uuid


class Context:
    """The context attributes Powertools reads."""

    function_name = "packaged"
    function_version = "$LATEST"
    memory_limit_in_mb = 512
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:packaged"
    aws_request_id = str(uuid.uuid4())
    log_group_name = "/aws/lambda/packaged"
    log_stream_name = "packaged"

    @staticmethod
    def get_remaining_time_in_millis() -> int:
        return 60_000


def main() -> None:
    task, runtime, handler_path, event_path, *modules = sys.argv[1:]
    sys.path[:0] = [task, runtime]
    module_name, _, attribute = handler_path.rpartition(".")
    handler = getattr(importlib.import_module(module_name), attribute)
    with open(event_path) as event_file:
        event = json.load(event_file)
    answer = handler(event, Context())
    origins = {name: importlib.import_module(name).__file__ for name in modules}
    print(json.dumps({"answer": answer, "origins": origins}))


main()
