"""moto's server, with one thread-safety fix to its SQS receive and the termination lifecycle hook it lacks.

moto serves each request on its own thread, and its SQSBackend.receive_message checks that a message is visible
and then marks it received without holding any lock. When several long-polling receivers are woken by the same
new message, two of them can both take it: the same message id is delivered twice while its first lease is
still running. AWS never does that on a FIFO queue, and the queue contract test (common/backends/tests/it/queue_contract.rs)
would see it as a lost lease. Measured here with boto3 alone (10 producers, 8 consumers, 600 messages, moto 5.2):
a repeated delivery in 1 of 3 runs on a standard queue.

The fix: each scan of a queue (find visible messages, mark them received) runs under one lock; the long-poll wait
between scans runs outside it, so a waiting receiver never blocks the others. Sends, deletes and visibility
changes take the same lock, so none of them lands in the middle of a scan.

moto 5 keeps an Auto Scaling group's lifecycle hooks but never applies them: scale-in terminates at once, and
CompleteLifecycleAction and RecordLifecycleActionHeartbeat are not implemented. raid's drain on scale-in (raid.fleet)
needs what AWS does: an instance the group takes away while a hook on autoscaling:EC2_INSTANCE_TERMINATING exists
waits in Terminating:Wait until CompleteLifecycleAction (or the hook's timeout, which this does not model) and only
then terminates. Scale-in still skips instances protected from scale-in, as moto already does. Everything else is
moto as published.
"""

import sys
import threading
import time

from moto.autoscaling.models import AutoScalingBackend, FakeAutoScalingGroup
from moto.autoscaling.responses import AutoScalingResponse
from moto.autoscaling.exceptions import ValidationError
from moto.core.responses import EmptyResult
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


# --- the termination lifecycle hook -------------------------------------------------------------------------------
TERMINATING = "autoscaling:EC2_INSTANCE_TERMINATING"


def _terminating_hook(group):
    hooks = group.autoscaling_backend.lifecycle_hooks.values()
    return next((h for h in hooks if h.auto_scaling_group_name == group.name and h.lifecycle_transition == TERMINATING), None)


_set_desired_capacity = FakeAutoScalingGroup.set_desired_capacity


def _set_desired_capacity_with_hook(self, new_capacity):
    active = self.active_instances()
    if _terminating_hook(self) is None or new_capacity is None or new_capacity >= len(active):
        return _set_desired_capacity(self, new_capacity)
    # Scale-in: unprotected instances wait for their CompleteLifecycleAction instead of terminating.
    self.desired_capacity = new_capacity
    for state in [s for s in active if not s.protected_from_scale_in][: len(active) - new_capacity]:
        state.lifecycle_state = "Terminating:Wait"


_terminate_instance = AutoScalingBackend.terminate_instance


def _terminate_instance_with_hook(self, instance_id, should_decrement):
    state = _instance_state(self, instance_id)
    if state is None or _terminating_hook(state.auto_scaling_group) is None:
        return _terminate_instance(self, instance_id, should_decrement)
    group = state.auto_scaling_group
    if should_decrement:
        group.desired_capacity -= 1
    state.lifecycle_state = "Terminating:Wait"
    return _Activity(state)


class _Activity:
    def __init__(self, state):
        import uuid
        from moto.core.utils import utcnow

        self.activity_id = str(uuid.uuid4())
        self.auto_scaling_group_name = state.auto_scaling_group.name
        self.description = f"Terminating EC2 instance: {state.instance.id}"
        self.cause = "the instance was taken out of the group on request; it waits for its lifecycle hook"
        self.start_time = utcnow()
        self.end_time = None
        self.status_code = "InProgress"
        self.progress = 50


def _instance_state(backend, instance_id):
    return next((s for g in backend.autoscaling_groups.values() for s in g.instance_states
                 if s.instance.id == instance_id), None)


def _waiting(backend, group_name, hook_name, instance_id):
    group = backend.autoscaling_groups.get(group_name)
    state = _instance_state(backend, instance_id)
    hook = group and _terminating_hook(group)
    if not group or not hook or hook.name != hook_name or not state or state.lifecycle_state != "Terminating:Wait":
        raise ValidationError(f"No active Lifecycle Action found with instance ID {instance_id}")
    return group, state


def _complete_lifecycle_action(self, group_name, hook_name, instance_id, result):
    group, state = _waiting(self, group_name, hook_name, instance_id)
    group.instance_states = [s for s in group.instance_states if s is not state]
    self.ec2_backend.terminate_instances([instance_id])


def _record_lifecycle_action_heartbeat(self, group_name, hook_name, instance_id):
    _waiting(self, group_name, hook_name, instance_id)


def _response(method):
    def handle(self):
        method(self.autoscaling_backend, self._get_param("AutoScalingGroupName"), self._get_param("LifecycleHookName"),
               self._get_param("InstanceId"), *([self._get_param("LifecycleActionResult")]
                                                  if method is _complete_lifecycle_action else []))
        return EmptyResult()

    return handle


FakeAutoScalingGroup.set_desired_capacity = _set_desired_capacity_with_hook
AutoScalingBackend.terminate_instance = _terminate_instance_with_hook
AutoScalingBackend.complete_lifecycle_action = _complete_lifecycle_action
AutoScalingBackend.record_lifecycle_action_heartbeat = _record_lifecycle_action_heartbeat
AutoScalingResponse.complete_lifecycle_action = _response(_complete_lifecycle_action)
AutoScalingResponse.record_lifecycle_action_heartbeat = _response(_record_lifecycle_action_heartbeat)

if __name__ == "__main__":
    sys.exit(main())
