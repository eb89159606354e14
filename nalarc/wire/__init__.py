"""The wire between the driver and its workers: framing, the handshake, and the typed messages.

Both sides import this package and nothing of each other.  It imports nothing
of nalarc but ``nalarc._errors`` (``tests/test_layering.py`` checks it).
"""

from __future__ import annotations

from ._framing import LARGE_FRAME as LARGE_FRAME
from ._framing import MAX_FRAME as MAX_FRAME
from ._framing import BlockingChannel as BlockingChannel
from ._framing import ConnectionClosed as ConnectionClosed
from ._framing import FramedStream as FramedStream
from ._framing import dumps as dumps
from ._framing import loads as loads
from ._handshake import AuthenticationError as AuthenticationError
from ._handshake import ProtocolMismatch as ProtocolMismatch
from ._handshake import accept_blocking as accept_blocking
from ._handshake import accept_worker as accept_worker
from ._handshake import connect_blocking as connect_blocking
from ._messages import PROTOCOL_VERSION as PROTOCOL_VERSION
from ._messages import BatchItem as BatchItem
from ._messages import Call as Call
from ._messages import Consume as Consume
from ._messages import DepRef as DepRef
from ._messages import Deps as Deps
from ._messages import Done as Done
from ._messages import Event as Event
from ._messages import Init as Init
from ._messages import Need as Need
from ._messages import Preempt as Preempt
from ._messages import Probe as Probe
from ._messages import ProbeReply as ProbeReply
from ._messages import Push as Push
from ._messages import Pushed as Pushed
from ._messages import QuotaAsk as QuotaAsk
from ._messages import QuotaConfig as QuotaConfig
from ._messages import QuotaGrant as QuotaGrant
from ._messages import QuotaSettle as QuotaSettle
from ._messages import PushTargets as PushTargets
from ._messages import Ready as Ready
from ._messages import Release as Release
from ._messages import Result as Result
from ._messages import Run as Run
from ._messages import RunBatch as RunBatch
from ._messages import Shutdown as Shutdown
from ._messages import Value as Value

__all__ = [
    "LARGE_FRAME", "MAX_FRAME", "PROTOCOL_VERSION", "AuthenticationError", "BatchItem", "BlockingChannel", "Call",
    "ConnectionClosed", "Consume", "DepRef", "Deps", "Done", "Event", "FramedStream", "Init", "Need", "Preempt", "Probe",
    "ProbeReply", "ProtocolMismatch", "Push", "PushTargets", "Pushed", "QuotaAsk", "QuotaConfig", "QuotaGrant",
    "QuotaSettle", "Ready", "Release", "Result", "Run",
    "RunBatch", "Shutdown", "Value", "accept_blocking", "accept_worker", "connect_blocking", "dumps", "loads",
]
