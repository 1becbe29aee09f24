"""The agent of the cross-language test: asks for approval with the Python SDK
and blocks until a human decides.

Usage: agent.py TARGET APPROVAL_TYPE
Prints `<id> <status> <decided_by>`; exits 0 only when approved.
"""

import sys

from approvald import ApprovalClient

target, approval_type = sys.argv[1:3]
with ApprovalClient(target, agent_id="cross-agent") as client:
    approval = client.request(
        approval_type, {"change": "cross-language test"}, timeout=120, wait=90
    )
print(approval.id, approval.status.name, approval.decided_by, flush=True)
sys.exit(0 if approval.approved else 1)
