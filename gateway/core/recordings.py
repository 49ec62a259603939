"""Recording calls and dialogs to WAV files, with the CALL_/DIALOG_RECORDING_* events.

A recording is a :class:`~gateway.media.recorder.Recorder` tapped on one leg through
:class:`~gateway.core.bridging.MediaBridges`: the tap sees that leg's row and, in a dialog,
its partner's. A call recording is one file, both directions summed; a dialog recording is
one file summed (``dialogComposition``) or one file per participant. Call, dialog (and
conference) recordings are mutually exclusive, so one leg never has two taps of ours.

A recording stops on request, at its ``maxDuration``, when its call ends or joins a
conference, or when its dialog ends (its first leg ending). The stop is published at once
(``*_RECORDING_STOPPED``, before the leg's final event: CallControl tells us before it
publishes), and the files are finished off the event loop, then ``*_RECORDING_READY``.
Events share the ordering key of the call's (or the dialog's) other events.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol

from gateway.core.bridging import MediaBridges
from gateway.core.calls import (
    ENDING,
    JOINING_CONFERENCE,
    CallControl,
    CallError,
    WrongState,
    order_key,
)
from gateway.core.dialogs import (
    Dialog,
    DialogControl,
    DialogQuery,
    DialogState,
    dialog_envelope,
)
from gateway.core.leg import Leg, LegState
from gateway.core.ports import EventSink
from gateway.core.views import (
    call_envelope,
    call_recording_view,
    dialog_recording_view,
)
from gateway.media.recorder import Recorder, SilenceWatch, Track
from gateway.timeutil import format_time, utcnow

log = logging.getLogger(__name__)


class FileStatus(StrEnum):
    RECORDING = "RECORDING"
    READY = "READY"
    FAILED = "FAILED"


@dataclass
class RecordingFile:
    """One WAV file: of a call (``call_id``), of a dialog composed (``dialog_id``), or of one
    participant of a dialog (both). ``endpoint`` and ``direction`` are the call's."""

    id: str
    calls_configuration_id: str
    start_time: datetime
    recording_type: str = "AUDIO"
    call_id: str | None = None
    dialog_id: str | None = None
    platform: dict[str, str] | None = None
    endpoint: dict[str, Any] | None = None
    direction: str | None = None
    end_time: datetime | None = None
    creation_time: datetime | None = None
    size: int = 0
    duration: int = 0
    status: FileStatus = FileStatus.RECORDING
    reason: str | None = None
    custom_data: dict[str, str] = field(default_factory=dict)
    file_prefix: str | None = None

    @property
    def name(self) -> str:
        return f"{self.id}.wav"

    @property
    def failed(self) -> bool:
        return self.status is FileStatus.FAILED


@dataclass(frozen=True)
class RecordingOptions:
    """What a start asks for; ``composition`` is for dialogs only. A recording with a
    ``max_duration`` or ``max_silence`` stops by itself, never on request (as the spec says)."""

    recording_type: str = "AUDIO"
    custom_data: dict[str, str] = field(default_factory=dict)
    file_prefix: str | None = None
    max_duration: int | None = None
    composition: bool = False
    max_silence: int | None = None

    @property
    def stops_by_itself(self) -> str | None:
        if self.max_duration:
            return f"a maxDuration ({self.max_duration} s)"
        if self.max_silence:
            return f"a maxSilence ({self.max_silence} s)"
        return None


@dataclass(frozen=True)
class RecordingQuery:
    """The filters of ``GET /calls/1/recordings/calls`` (``dialogs`` False) and ``.../dialogs``
    (where ``call_id`` is either call of the dialog, and becomes ``dialog_ids``)."""

    dialogs: bool = False
    call_id: str | None = None
    dialog_id: str | None = None
    dialog_ids: tuple[str, ...] | None = None
    calls_configuration_id: str | None = None
    application_id: str | None = None
    entity_id: str | None = None
    endpoint_type: str | None = None
    endpoint_identifier: str | None = None
    direction: str | None = None
    start_time_after: datetime | None = None
    end_time_before: datetime | None = None
    composition: bool | None = None


class RecordingStore(Protocol):
    def save(self, file: RecordingFile) -> None: ...

    def get(self, file_id: str) -> RecordingFile | None: ...

    def delete(self, file_id: str) -> None: ...

    def find(
        self, query: RecordingQuery, offset: int, limit: int
    ) -> tuple[list[list[RecordingFile]], int]:
        """Finished files (ready or failed) grouped by owner (call or dialog), newest first,
        and the number of owners."""
        ...

    def unfinished(self) -> list[RecordingFile]: ...


class RecordingNotFound(CallError):
    def __init__(self, kind: str, ident: str) -> None:
        super().__init__(f"{kind} {ident!r} was not found.")


@dataclass(eq=False)
class _Session:
    """A recording in progress: its files, the tap, and whose recording it is."""

    options: RecordingOptions
    files: list[RecordingFile]
    recorder: Recorder | None
    tapped: str
    call: Leg | None = None  # a call recording
    dialog: Dialog | None = None  # a dialog recording
    timer: asyncio.TimerHandle | None = None

    @property
    def owner(self) -> str:
        """The call's id for a call recording, the dialog's for a dialog recording."""
        if self.call is not None:
            return self.call.id
        assert self.dialog is not None
        return self.dialog.id


class RecordingControl:
    def __init__(
        self,
        calls: CallControl,
        dialogs: DialogControl,
        bridges: MediaBridges,
        store: RecordingStore,
        sink: EventSink,
        directory: Path,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._calls = calls
        self._dialogs = dialogs
        self._bridges = bridges
        self._store = store
        self._sink = sink
        self.directory = directory
        self._clock = clock
        self._by_call: dict[str, _Session] = {}
        self._by_dialog: dict[str, _Session] = {}
        self._pending_calls: dict[str, RecordingOptions] = {}  # start when answered
        self._pending_dialogs: dict[str, RecordingOptions] = {}  # start when established
        self._tasks: set[asyncio.Task[None]] = set()
        calls.observe(self._on_call_event)
        calls.observe_before(self._before_change)

    # -- reading --------------------------------------------------------------------------

    def path(self, file: RecordingFile) -> Path:
        return self.directory / file.name

    def get_file(self, file_id: str) -> RecordingFile:
        file = self._store.get(file_id)
        if file is None or file.status is FileStatus.RECORDING:
            raise RecordingNotFound("Recording file", file_id)
        return file

    def find(
        self, query: RecordingQuery, offset: int, limit: int
    ) -> tuple[list[list[RecordingFile]], int]:
        if query.dialogs and query.call_id is not None:
            query = replace(query, call_id=None, dialog_ids=self._dialogs_of(query.call_id))
        return self._store.find(query, offset, limit)

    def _dialogs_of(self, call_id: str) -> tuple[str, ...]:
        """Every dialog the call was the parent or the child of."""
        found: list[str] = []
        for role in (DialogQuery(parent_call_id=call_id), DialogQuery(child_call_id=call_id)):
            dialogs, _ = self._dialogs.query(role, 0, 1_000_000)
            found += [dialog.id for dialog in dialogs]
        return tuple(found)

    def of_call(self, call_id: str) -> list[RecordingFile]:
        return self._one(RecordingQuery(call_id=call_id), "Recording of call", call_id)

    def of_dialog(self, dialog_id: str) -> list[RecordingFile]:
        query = RecordingQuery(dialogs=True, dialog_id=dialog_id)
        return self._one(query, "Recording of dialog", dialog_id)

    def _one(self, query: RecordingQuery, kind: str, ident: str) -> list[RecordingFile]:
        groups, _ = self._store.find(query, 0, 1)
        if not groups:
            raise RecordingNotFound(kind, ident)
        return groups[0]

    # -- verbs: calls ---------------------------------------------------------------------

    def check_call(self, leg: Leg) -> None:
        """Raise WrongState when the call may not be recorded now (answered or not)."""
        if leg.conference_id is not None:
            raise WrongState(
                f"Call {leg.id!r} is in conference {leg.conference_id!r}: "
                "record the conference instead."
            )
        if leg.id in self._by_call or leg.id in self._pending_calls:
            raise WrongState(f"Call {leg.id!r} is already being recorded.")
        if leg.dialog_id in self._by_dialog or leg.dialog_id in self._pending_dialogs:
            raise WrongState(
                f"Call {leg.id!r} is in dialog {leg.dialog_id!r}, which is being recorded: "
                "call and dialog recordings are mutually exclusive."
            )

    def start_call(self, call_id: str, options: RecordingOptions) -> RecordingFile:
        """Start recording an answered call: CALL_RECORDING_STARTED (or _FAILED)."""
        leg = self._calls.get(call_id)
        if self._calls.live(call_id) is None or leg.state is not LegState.ESTABLISHED:
            raise WrongState(f"Cannot record call {call_id!r} in state {leg.state}.")
        self.check_call(leg)
        self._has_media(leg)
        file = self._new_file(leg, options, call_id=leg.id)
        session = _Session(options, [file], None, leg.id, call=leg)
        if self._open(session, [Track(self.path(file))]):
            self._by_call[leg.id] = session
            self._publish(session, "STARTED", self._started_properties(session))
        return file

    def start_call_when_answered(self, leg: Leg, options: RecordingOptions) -> None:
        """``recording`` of create-call and answer: the recording starts with the answer."""
        self.check_call(leg)
        self._pending_calls[leg.id] = options

    def forget_pending_call(self, call_id: str) -> None:
        """The request that asked for a recording on answer failed."""
        self._pending_calls.pop(call_id, None)

    def stop_call(self, call_id: str) -> None:
        self._calls.get(call_id)
        self._stop_on_request(self._by_call.get(call_id), f"Call {call_id!r}")

    # -- verbs: dialogs -------------------------------------------------------------------

    def check_dialog(self, *call_ids: str) -> None:
        """Raise WrongState when a dialog of these calls may not be recorded (one of them is)."""
        for call_id in call_ids:
            if call_id in self._by_call or call_id in self._pending_calls:
                raise WrongState(
                    f"Call {call_id!r} is being recorded: call and dialog recordings are "
                    "mutually exclusive; stop the call's recording first."
                )

    def start_dialog(self, dialog_id: str, options: RecordingOptions) -> None:
        """Start recording an established dialog: DIALOG_RECORDING_STARTED (or _FAILED)."""
        dialog = self._dialogs.get(dialog_id)
        if dialog.state is not DialogState.ESTABLISHED:
            raise WrongState(f"Cannot record dialog {dialog_id!r} in state {dialog.state}.")
        if dialog_id in self._by_dialog or dialog_id in self._pending_dialogs:
            raise WrongState(f"Dialog {dialog_id!r} is already being recorded.")
        parent, child = self._dialogs.legs(dialog)
        assert parent is not None and child is not None  # an established dialog has both
        self.check_dialog(parent.id, child.id)
        self._has_media(parent)
        if options.composition:
            files = [self._new_file(parent, options, dialog_id=dialog.id)]
            tracks = [Track(self.path(files[0]))]
        else:
            files = [self._new_file(leg, options, leg.id, dialog.id) for leg in (parent, child)]
            tracks = [Track(self.path(f), f.call_id) for f in files]
        session = _Session(options, files, None, parent.id, dialog=dialog)
        if self._open(session, tracks):
            self._by_dialog[dialog.id] = session
            self._publish(session, "STARTED", self._started_properties(session))

    def start_dialog_when_established(self, dialog: Dialog, options: RecordingOptions) -> None:
        """``recording`` of the dialog-creation methods (checked before the dialog was made)."""
        if dialog.state is DialogState.ESTABLISHED:
            self._start_pending(lambda: self.start_dialog(dialog.id, options), dialog=dialog)
        elif not dialog.state.is_final:
            self._pending_dialogs[dialog.id] = options

    def stop_dialog(self, dialog_id: str) -> None:
        self._dialogs.get(dialog_id)
        self._stop_on_request(self._by_dialog.get(dialog_id), f"Dialog {dialog_id!r}")

    # -- verbs: files ---------------------------------------------------------------------

    def delete_file(self, file_id: str) -> RecordingFile:
        file = self.get_file(file_id)
        self._delete(file)
        return file

    def delete_files(self, files: list[RecordingFile]) -> None:
        for file in files:
            self._delete(file)

    def _delete(self, file: RecordingFile) -> None:
        self.path(file).unlink(missing_ok=True)
        self._store.delete(file.id)

    # -- lifecycle ------------------------------------------------------------------------

    def recover(self) -> int:
        """Files a previous process was writing when it died: failed, never finished."""
        orphans = self._store.unfinished()
        for file in orphans:
            file.status, file.reason = FileStatus.FAILED, "The gateway stopped while recording"
            file.end_time = file.end_time or file.start_time
            self._store.save(file)
        return len(orphans)

    async def close(self) -> None:
        """Stop what still records (CallControl.close ends the calls first) and wait until every
        file is finished."""
        for session in [*self._by_call.values(), *self._by_dialog.values()]:
            self._stop(session)
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    # -- reacting to the legs -------------------------------------------------------------

    def _on_call_event(self, leg: Leg, event: str) -> None:
        if event != "CALL_ESTABLISHED":
            return
        options = self._pending_calls.pop(leg.id, None)
        if options is not None:
            self._start_pending(lambda: self.start_call(leg.id, options), call=leg)
        dialog_id = leg.dialog_id
        if dialog_id is not None and dialog_id in self._pending_dialogs:
            dialog = self._dialogs.get(dialog_id)  # DialogControl has seen this event already
            if dialog.state is DialogState.ESTABLISHED:
                options = self._pending_dialogs.pop(dialog_id)
                self._start_pending(lambda: self.start_dialog(dialog_id, options), dialog=dialog)

    def _before_change(self, leg: Leg, change: str) -> None:
        """The leg ends or joins a conference: its recording ends first; a dialog's with it."""
        if change not in (ENDING, JOINING_CONFERENCE):
            return
        self._pending_calls.pop(leg.id, None)
        session = self._by_call.get(leg.id)
        if session is not None:
            self._stop(session)
        if change == ENDING and leg.dialog_id is not None:
            self._pending_dialogs.pop(leg.dialog_id, None)
            session = self._by_dialog.get(leg.dialog_id)
            if session is not None:
                self._stop(session)

    def _start_pending(
        self, start: Callable[[], object], call: Leg | None = None, dialog: Dialog | None = None
    ) -> None:
        """A recording asked for in advance cannot start after all: *_RECORDING_FAILED."""
        try:
            start()
        except CallError as error:
            session = _Session(RecordingOptions(), [], None, "", call=call, dialog=dialog)
            self._publish(session, "FAILED", {"reason": str(error)})

    # -- recording ------------------------------------------------------------------------

    def _has_media(self, leg: Leg) -> None:
        if self._calls.media_port(leg.id) is None:
            raise WrongState(f"Call {leg.id!r} has no media to record.")

    def _new_file(
        self,
        leg: Leg,
        options: RecordingOptions,
        call_id: str | None = None,
        dialog_id: str | None = None,
    ) -> RecordingFile:
        return RecordingFile(
            id=str(uuid.uuid4()),
            calls_configuration_id=leg.calls_configuration_id,
            start_time=self._clock(),
            recording_type=options.recording_type,
            call_id=call_id,
            dialog_id=dialog_id,
            platform=leg.platform,
            endpoint=leg.endpoint if call_id else None,
            direction=leg.direction.value if call_id else None,
            custom_data=dict(options.custom_data),
            file_prefix=options.file_prefix,
        )

    def _open(self, session: _Session, tracks: list[Track]) -> bool:
        """Create the files and tap the leg; a file that cannot be created fails the
        recording (*_RECORDING_FAILED) rather than the request."""
        loop = asyncio.get_running_loop()
        watch = None
        if session.options.max_silence:  # from the tick: stop on the next loop turn
            silent = session.options.max_silence
            watch = SilenceWatch(silent, lambda: loop.call_soon(self._stop, session))
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            session.recorder = Recorder(
                tracks, lambda error: self._on_write_failed(session), watch=watch
            )
        except OSError as error:
            for track in tracks:
                with contextlib.suppress(OSError):
                    track.path.unlink(missing_ok=True)
            self._fail(session, f"The recording file could not be created: {error}")
            return False
        self._bridges.tap(session.tapped, session.recorder)
        for file in session.files:
            self._store.save(file)
        if session.options.max_duration:
            session.timer = loop.call_later(session.options.max_duration, self._stop, session)
        return True

    def _stop_on_request(self, session: _Session | None, owner: str) -> None:
        if session is None:
            raise WrongState(f"{owner} is not being recorded.")
        limit = session.options.stops_by_itself
        if limit is not None:
            raise WrongState(
                f"The recording of {owner.lower()} has {limit}: it stops by itself and "
                "cannot be stopped by request."
            )
        self._stop(session)

    def _detach(self, session: _Session) -> bool:
        """Untap and forget the session; False if it was over already."""
        table = self._by_call if session.call is not None else self._by_dialog
        if table.get(session.owner) is not session:
            return False
        del table[session.owner]
        if session.timer is not None:
            session.timer.cancel()
        assert session.recorder is not None
        self._bridges.untap(session.tapped, session.recorder)
        return True

    def _stop(self, session: _Session) -> None:
        if not self._detach(session):
            return
        assert session.recorder is not None
        session.recorder.stop()
        moment = self._clock()
        for file in session.files:
            file.end_time = moment
        first = session.files[0]
        properties: dict[str, Any] = {
            "startTime": format_time(first.start_time),
            "endTime": format_time(moment),
        }
        if session.call is not None:
            properties["fileId"] = first.id
        self._publish(session, "STOPPED", properties)
        self._track(self._finish(session))

    async def _finish(self, session: _Session) -> None:
        """Close the files off the loop, then READY (or FAILED if they cannot be finished)."""
        recorder = session.recorder
        assert recorder is not None
        try:
            sizes = await asyncio.to_thread(recorder.close)
        except OSError as error:
            self._fail(session, f"The recording file could not be written: {error}")
            return
        if recorder.error is not None:
            self._fail(session, f"The recording file could not be written: {recorder.error}")
            return
        moment = self._clock()
        for file, size, writer in zip(session.files, sizes, recorder.writers, strict=True):
            file.size, file.duration = size, round(writer.seconds)
            file.creation_time, file.status = moment, FileStatus.READY
            self._store.save(file)
        view = (
            call_recording_view(session.files, public=False)
            if session.call is not None
            else dialog_recording_view(session.files, public=False)
        )
        self._publish(session, "READY", {"recording": view})

    def _on_write_failed(self, session: _Session) -> None:
        """From inside the tick: untap on the next loop turn, not while the bridge iterates."""
        asyncio.get_running_loop().call_soon(self._write_failed, session)

    def _write_failed(self, session: _Session) -> None:
        if self._detach(session):
            self._track(self._finish(session))  # closes what can be closed, then FAILED

    def _fail(self, session: _Session, reason: str) -> None:
        for file in session.files:
            file.status, file.reason = FileStatus.FAILED, reason
            file.end_time = file.end_time or self._clock()
            self._store.save(file)
        properties: dict[str, Any] = {
            "reason": reason,
            "recordingCustomData": session.options.custom_data or None,
        }
        if session.call is not None and session.files:
            properties["fileId"] = session.files[0].id
        self._publish(session, "FAILED", {k: v for k, v in properties.items() if v is not None})

    # -- events ---------------------------------------------------------------------------

    @staticmethod
    def _started_properties(session: _Session) -> dict[str, Any]:
        options = session.options
        properties: dict[str, Any] = {"recordingType": options.recording_type}
        if session.call is not None:
            properties["fileId"] = session.files[0].id
            properties["maxDuration"] = options.max_duration
            properties["maxSilence"] = options.max_silence
        else:
            properties["composition"] = options.composition
        properties["filePrefix"] = options.file_prefix
        properties["customData"] = options.custom_data or None
        return {k: v for k, v in properties.items() if v is not None}

    def _publish(self, session: _Session, what: str, properties: dict[str, Any]) -> None:
        moment = self._clock()
        if session.call is not None:
            leg = self._calls.live(session.call.id) or session.call
            event = call_envelope(f"CALL_RECORDING_{what}", leg, moment, properties)
            self._sink.publish(event, order_key(leg))
            return
        dialog = session.dialog
        assert dialog is not None
        event = dialog_envelope(f"DIALOG_RECORDING_{what}", dialog, moment, properties)
        self._sink.publish(event, dialog.parent_call_id)

    def _track(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
