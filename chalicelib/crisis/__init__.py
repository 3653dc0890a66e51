"""Crisis detection: similar complaints grouped per receiving account, a spike over their
baseline starts a crisis (``docs/crisis.md``).

The sync builds one ``CrisisDetector`` per Lambda container (it keeps each account's
recent complaints in memory between batches) and calls ``observe(message)`` for every
new inbound message; agents' tags call ``declare``. Nothing here calls a helpdesk.
"""

from chalicelib.crisis.detector import CrisisDetector, is_complaint
from chalicelib.crisis.model import Crisis, CrisisDecision, CrisisSettings, Member, Origin, Outcome, Status
from chalicelib.crisis.store import CrisisStore, CrisisStoreUnavailable, DynamoCrisisStore, MemoryCrisisStore

__all__ = [
    "Crisis",
    "CrisisDecision",
    "CrisisDetector",
    "CrisisSettings",
    "CrisisStore",
    "CrisisStoreUnavailable",
    "DynamoCrisisStore",
    "Member",
    "MemoryCrisisStore",
    "Origin",
    "Outcome",
    "Status",
    "is_complaint",
]
