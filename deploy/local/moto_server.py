"""moto's server, with one thread-safety fix to its SQS receive.

moto serves each request on its own thread, and its SQSBackend.receive_message checks that a message is visible
and then marks it received without holding any lock. When several long-polling receivers are woken by the same
new message, two of them can both take it: the same message id is delivered twice while its first lease is
still running. AWS never does that on a FIFO queue, and the queue contract test (common/backends/tests/it/queue_contract.rs)
would see it as a lost lease. Measured here with boto3 alone (10 producers, 8 consumers, 600 messages, moto 5.2):
a repeated delivery in 1 of 3 runs on a standard queue.

The fix: each scan of a queue (find visible messages, mark them received) runs under one lock; the long-poll wait
between scans runs outside it, so a waiting receiver never blocks the others. Sends, deletes and visibility
changes take the same lock, so none of them lands in the middle of a scan. Everything else is moto as published.
"""

import sys
import threading
import time

from moto.server import main
from moto.sqs.models import SQSBackend

_lock = threading.RLock()
_receive = SQSBackend.receive_message


def _receive_message(self, queue_name, count, wait_seconds_timeout, visibility_timeout, message_attribute_names=None):
    deadline = time.monotonic() + (wait_seconds_timeout or 0)
    while True:
        with _lock:
            result = _receive(self, queue_name, count, 0, visibility_timeout, message_attribute_names)
        left = deadline - time.monotonic()
        if result or left <= 0:
            return result
        self.get_queue(queue_name).wait_for_messages(min(1.0, left))


def _locked(method):
    def locked(self, *args, **kwargs):
        with _lock:
            return method(self, *args, **kwargs)

    locked.__name__ = method.__name__
    return locked


SQSBackend.receive_message = _receive_message
for _name in ("send_message", "send_message_batch", "delete_message", "delete_message_batch", "change_message_visibility"):
    setattr(SQSBackend, _name, _locked(getattr(SQSBackend, _name)))

if __name__ == "__main__":
    sys.exit(main())
