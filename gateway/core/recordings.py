"""Recording calls, dialogs and conferences to WAV files, with the *_RECORDING_* events.

A call or dialog recording is a :class:`~gateway.media.recorder.Recorder` tapped on one leg
through :class:`~gateway.core.bridging.MediaBridges`: the tap sees that leg's row and, in a
dialog, its partner's. A conference recording taps the room's bridge through
:class:`~gateway.core.conferences.ConferenceControl` (one row per participant with audio).

- A call recording is one file, both directions summed (MONO), or the call's own audio on the
  left and what it hears from the other leg on the right (STEREO). With ``beep`` the call
  first hears a beep (:data:`BEEP_HZ`, :data:`BEEP_MS`); the recording starts after it.
- A dialog or conference recording is one file of everyone summed (composition enabled), or
  one file per participant: in a conference, a participant that joins later gets its own file
  from its join, one that leaves ends its file. Files recorded apart can be composed later
  (:meth:`RecordingControl.compose`): mixed on one timeline by their start times.

Call, dialog and conference recordings are mutually exclusive, so one leg never has two taps
of ours. A recording stops on request, at its ``maxDuration`` or ``maxSilence``, when its
call ends or joins a conference, when its dialog ends, when its conference ends. The stop is
published at once (``*_RECORDING_STOPPED``, before the owner's final event), the files are
finished off the event loop, then ``*_RECORDING_READY``. Each finished file has its metadata
beside it (``<fileId>.json``); a file a crashed process left unfinished is repaired on start.
Events share the ordering key of their owner's other events.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import uuid
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from gateway.core.bridging import MediaBridges
from gateway.core.calls import (
    ENDING,
    JOINING_CONFERENCE,
    CallControl,
    CallError,
    WrongState,
    order_key,
)
from gateway.core.conferences import (
    Conference,
    ConferenceControl,
    ConferenceQuery,
    conference_envelope,
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
from gateway.core.views import call_envelope, call_recording_view, recording_file_view
from gateway.core.views import dialog_recording_view as _dialog_view
from gateway.media.compose import Part, compose_files
from gateway.media.frame import NARROWBAND
from gateway.media.player import Player
from gateway.media.recorder import (
    HEADER_SIZE,
    Recorder,
    SilenceWatch,
    Track,
    repair_wav,
    wav_seconds,
)
from gateway.timeutil import format_time, utcnow

log = logging.getLogger(__name__)

BEEP_HZ = 1000
BEEP_MS = 300
_BEEP_LEVEL = 0.3  # of full scale


def beep_clip() -> np.ndarray:
    """The beep played before a call recording: a sine with 10 ms fades (no clicks)."""
    count = BEEP_MS * NARROWBAND // 1000
    t = np.arange(count) / NARROWBAND
    envelope = np.minimum(1.0, np.minimum(t, t[::-1]) / 0.01)
    wave = _BEEP_LEVEL * 32767 * envelope * np.sin(2 * np.pi * BEEP_HZ * t)
    return np.rint(wave).astype(np.int16)


class FileStatus(StrEnum):
    RECORDING = "RECORDING"
    READY = "READY"
    FAILED = "FAILED"


class OwnerKind(StrEnum):
    """Whose recording a file is: a call's, a dialog's or a conference's."""

    CALL = "CALL"
    DIALOG = "DIALOG"
    CONFERENCE = "CONFERENCE"


@dataclass
class RecordingFile:
    """One WAV file: of a call (``call_id``), of a dialog or conference composed
    (``dialog_id`` or ``conference_id``), or of one participant of either (both).
    ``endpoint`` and ``direction`` are the call's; ``channel_map`` says whose audio each
    channel of a multi-channel composition holds (channel number from 1 → call id)."""

    id: str
    calls_configuration_id: str
    start_time: datetime
    recording_type: str = "AUDIO"
    call_id: str | None = None
    dialog_id: str | None = None
    conference_id: str | None = None
    conference_name: str | None = None
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
    channels: int = 1
    channel_map: dict[str, str] | None = None

    @property
    def name(self) -> str:
        return f"{self.id}.wav"

    @property
    def failed(self) -> bool:
        return self.status is FileStatus.FAILED

    @property
    def kind(self) -> OwnerKind:
        if self.conference_id is not None:
            return OwnerKind.CONFERENCE
        return OwnerKind.DIALOG if self.dialog_id is not None else OwnerKind.CALL

    @property
    def owner_id(self) -> str:
        owner = {
            OwnerKind.CALL: self.call_id,
            OwnerKind.DIALOG: self.dialog_id,
            OwnerKind.CONFERENCE: self.conference_id,
        }[self.kind]
        assert owner is not None
        return owner


@dataclass(frozen=True)
class RecordingOptions:
    """What a start asks for; ``composition`` is for dialogs and conferences, ``channels``
    (2: STEREO) and ``beep`` for calls. A recording with a ``max_duration`` or
    ``max_silence`` stops by itself, never on request (as the spec says)."""

    recording_type: str = "AUDIO"
    custom_data: dict[str, str] = field(default_factory=dict)
    file_prefix: str | None = None
    max_duration: int | None = None
    composition: bool = False
    max_silence: int | None = None
    channels: int = 1
    beep: bool = False

    @property
    def stops_by_itself(self) -> str | None:
        if self.max_duration:
            return f"a maxDuration ({self.max_duration} s)"
        if self.max_silence:
            return f"a maxSilence ({self.max_silence} s)"
        return None


@dataclass(frozen=True)
class RecordingQuery:
    """The filters of ``GET /calls/1/recordings/calls``, ``.../dialogs`` and
    ``.../conferences``: ``call_id`` of a dialog or conference is any call it had, and
    becomes ``owner_ids``."""

    kind: OwnerKind = OwnerKind.CALL
    call_id: str | None = None
    dialog_id: str | None = None
    conference_id: str | None = None
    conference_name: str | None = None
    owner_ids: tuple[str, ...] | None = None
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
        """Finished files (ready or failed) grouped by owner (call, dialog or conference),
        newest first, and the number of owners."""
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
    tapped: str  # the leg tapped, or the conference
    call: Leg | None = None  # a call recording
    dialog: Dialog | None = None  # a dialog recording
    conference: Conference | None = None  # a conference recording
    timer: asyncio.TimerHandle | None = None
    beep: Player | None = None  # playing: the recorder is not tapped yet
    writing: dict[str, RecordingFile] = field(default_factory=dict)  # participant → file

    @property
    def kind(self) -> OwnerKind:
        if self.call is not None:
            return OwnerKind.CALL
        return OwnerKind.DIALOG if self.dialog is not None else OwnerKind.CONFERENCE

    @property
    def owner(self) -> str:
        owner = self.call or self.dialog or self.conference
        assert owner is not None
        return owner.id


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
        conferences: ConferenceControl | None = None,
    ) -> None:
        self._calls = calls
        self._dialogs = dialogs
        self._bridges = bridges
        self._store = store
        self._sink = sink
        self.directory = directory
        self._clock = clock
        self._conferences = conferences
        self._sessions: dict[OwnerKind, dict[str, _Session]] = {kind: {} for kind in OwnerKind}
        self._pending_calls: dict[str, RecordingOptions] = {}  # start when answered
        self._pending_dialogs: dict[str, RecordingOptions] = {}  # start when established
        self._composing: set[str] = set()  # owners whose files are being composed
        self._tasks: set[asyncio.Task[None]] = set()
        calls.observe(self._on_call_event)
        calls.observe_before(self._before_change)
        if conferences is not None:
            conferences.observe_participants(self._on_participant)
            conferences.observe_end(self._on_conference_end)

    @property
    def _by_call(self) -> dict[str, _Session]:
        return self._sessions[OwnerKind.CALL]

    @property
    def _by_dialog(self) -> dict[str, _Session]:
        return self._sessions[OwnerKind.DIALOG]

    # -- reading --------------------------------------------------------------------------

    def path(self, file: RecordingFile) -> Path:
        return self.directory / file.name

    def metadata_path(self, file: RecordingFile) -> Path:
        return self.directory / f"{file.id}.json"

    def get_file(self, file_id: str) -> RecordingFile:
        file = self._store.get(file_id)
        if file is None or file.status is FileStatus.RECORDING:
            raise RecordingNotFound("Recording file", file_id)
        return file

    def find(
        self, query: RecordingQuery, offset: int, limit: int
    ) -> tuple[list[list[RecordingFile]], int]:
        if query.kind is not OwnerKind.CALL and query.call_id is not None:
            owners = self._owners_of(query.kind, query.call_id)
            query = replace(query, call_id=None, owner_ids=owners)
        return self._store.find(query, offset, limit)

    def _owners_of(self, kind: OwnerKind, call_id: str) -> tuple[str, ...]:
        """Every dialog the call was the parent or the child of, or conference it was in."""
        if kind is OwnerKind.CONFERENCE:
            if self._conferences is None:
                return ()
            found, _ = self._conferences.query(ConferenceQuery(call_id=call_id), 0, 1_000_000)
            return tuple(conference.id for conference in found)
        dialogs: list[str] = []
        for role in (DialogQuery(parent_call_id=call_id), DialogQuery(child_call_id=call_id)):
            found_dialogs, _ = self._dialogs.query(role, 0, 1_000_000)
            dialogs += [dialog.id for dialog in found_dialogs]
        return tuple(dialogs)

    def of_call(self, call_id: str) -> list[RecordingFile]:
        return self._one(RecordingQuery(call_id=call_id), "Recording of call", call_id)

    def of_dialog(self, dialog_id: str) -> list[RecordingFile]:
        query = RecordingQuery(OwnerKind.DIALOG, dialog_id=dialog_id)
        return self._one(query, "Recording of dialog", dialog_id)

    def of_conference(self, conference_id: str) -> list[RecordingFile]:
        query = RecordingQuery(OwnerKind.CONFERENCE, conference_id=conference_id)
        return self._one(query, "Recording of conference", conference_id)

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
        """Start recording an answered call: CALL_RECORDING_STARTED (or _FAILED); with a
        beep, the file starts once the call has heard it."""
        leg = self._calls.get(call_id)
        if self._calls.live(call_id) is None or leg.state is not LegState.ESTABLISHED:
            raise WrongState(f"Cannot record call {call_id!r} in state {leg.state}.")
        self.check_call(leg)
        self._has_media(leg)
        file = self._new_file(leg, options, call_id=leg.id)
        file.channels = options.channels
        session = _Session(options, [file], None, leg.id, call=leg)
        stereo = options.channels == 2  # the call's own audio left, what it hears right
        track = Track(self.path(file), leg.id, stereo=True) if stereo else Track(self.path(file))
        if options.beep:
            loop = asyncio.get_running_loop()
            session.beep = Player(
                beep_clip(), on_done=lambda: loop.call_soon(self._beeped, session)
            )
        if self._open(session, [track]):
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

    # -- verbs: conferences ---------------------------------------------------------------

    def start_conference(self, conference_id: str, options: RecordingOptions) -> None:
        """Start recording a live conference: CONFERENCE_RECORDING_STARTED (or _FAILED)."""
        conferences = self._conference_control()
        conference = conferences.live(conference_id)
        if conference is None:
            conferences.get(conference_id)  # ConferenceNotFound if it never existed
            raise WrongState(f"Conference {conference_id!r} has finished or is ending.")
        sessions = self._sessions[OwnerKind.CONFERENCE]
        if conference_id in sessions:
            raise WrongState(f"Conference {conference_id!r} is already being recorded.")
        session = _Session(options, [], None, conference_id, conference=conference)
        if options.composition:
            session.files = [self._conference_file(conference, options, None)]
            tracks = [Track(self.path(session.files[0]))]
        else:
            for call_id in conferences.participants(conference_id):
                session.writing[call_id] = self._conference_file(conference, options, call_id)
            session.files = list(session.writing.values())
            tracks = [Track(self.path(f), f.call_id) for f in session.files]
        if self._open(session, tracks):
            sessions[conference_id] = session
            self._publish(session, "STARTED", self._started_properties(session))

    def stop_conference(self, conference_id: str) -> None:
        self._conference_control().get(conference_id)
        session = self._sessions[OwnerKind.CONFERENCE].get(conference_id)
        self._stop_on_request(session, f"Conference {conference_id!r}")

    def _conference_control(self) -> ConferenceControl:
        if self._conferences is None:
            raise WrongState("Conferences are not available.")
        return self._conferences

    def _conference_file(
        self, conference: Conference, options: RecordingOptions, call_id: str | None
    ) -> RecordingFile:
        if call_id is None:
            file = RecordingFile(
                str(uuid.uuid4()),
                conference.calls_configuration_id,
                self._clock(),
                options.recording_type,
                platform=conference.platform,
                custom_data=dict(options.custom_data),
                file_prefix=options.file_prefix,
            )
        else:
            file = self._new_file(self._calls.get(call_id), options, call_id=call_id)
            file.calls_configuration_id = conference.calls_configuration_id
        file.conference_id, file.conference_name = conference.id, conference.name
        return file

    def _on_participant(self, conference_id: str, call_id: str, joined: bool) -> None:
        """A participant's audio enters or leaves a room recorded one file per participant."""
        session = self._sessions[OwnerKind.CONFERENCE].get(conference_id)
        if session is None or session.options.composition or session.recorder is None:
            return
        if not joined:
            file = session.writing.pop(call_id, None)
            if file is not None:
                session.recorder.end(self.path(file))
                file.end_time = self._clock()
                self._store.save(file)
            return
        assert session.conference is not None
        file = self._conference_file(session.conference, session.options, call_id)
        try:
            session.recorder.add(Track(self.path(file), call_id))
        except OSError as error:
            file.status = FileStatus.FAILED
            file.reason = f"The recording file could not be created: {error}"
            file.end_time = file.start_time
        else:
            session.writing[call_id] = file
        session.files.append(file)
        self._store.save(file)

    def _on_conference_end(self, conference_id: str) -> None:
        session = self._sessions[OwnerKind.CONFERENCE].get(conference_id)
        if session is not None:
            self._stop(session)

    # -- verbs: composing what was recorded apart -----------------------------------------

    def compose(
        self, kind: OwnerKind, owner_id: str, delete_parts: bool = True, multi_channel: bool = False
    ) -> None:
        """Mix the participants' files of a dialog's or conference's recordings into one
        file, aligned by their start times, off the loop: *_COMPOSITION_FINISHED (or
        _FAILED). ``multi_channel``: each call on its own channel instead of summed."""
        files = (
            self.of_dialog(owner_id) if kind is OwnerKind.DIALOG else self.of_conference(owner_id)
        )
        parts = [f for f in files if f.call_id is not None and not f.failed]
        if not parts:
            raise WrongState(
                f"The recording of {kind.lower()} {owner_id!r} has no files to compose."
            )
        if owner_id in self._composing or owner_id in self._sessions[kind]:
            raise WrongState(
                f"The recording of {kind.lower()} {owner_id!r} is still being made or composed."
            )
        self._composing.add(owner_id)
        self._track(self._compose(kind, owner_id, parts, delete_parts, multi_channel))

    async def _compose(
        self,
        kind: OwnerKind,
        owner_id: str,
        parts: list[RecordingFile],
        delete_parts: bool,
        multi_channel: bool,
    ) -> None:
        first = parts[0]
        owner = _Session(RecordingOptions(), [], None, owner_id)
        try:
            self._owner_of(owner, first)
            start = min(part.start_time for part in parts)
            calls = list(dict.fromkeys(str(part.call_id) for part in parts))
            file = replace(
                first,
                id=str(uuid.uuid4()),
                start_time=start,
                end_time=max(part.end_time or part.start_time for part in parts),
                call_id=None,
                endpoint=None,
                direction=None,
                channels=len(calls) if multi_channel else 1,
                channel_map={str(n): c for n, c in enumerate(calls, 1)} if multi_channel else None,
            )
            pieces = [
                Part(
                    self.path(part),
                    round((part.start_time - start).total_seconds() * NARROWBAND),
                    calls.index(str(part.call_id)) if multi_channel else 0,
                )
                for part in parts
            ]
            file.size = await asyncio.to_thread(
                compose_files, pieces, self.path(file), file.channels
            )
            file.duration = round(wav_seconds(file.size - HEADER_SIZE, file.channels))
            file.creation_time, file.status = self._clock(), FileStatus.READY
            self._store.save(file)
            await asyncio.to_thread(self._write_metadata, [file])
            if delete_parts:
                self.delete_files(parts, announce=False)
            files = (
                self.of_dialog(owner_id)
                if kind is OwnerKind.DIALOG
                else self.of_conference(owner_id)
            )
            self._publish(owner, "COMPOSITION_FINISHED", {"recording": self._view(files)})
        except (OSError, ValueError, CallError) as error:
            log.warning("composing the recording of %s %s failed: %s", kind, owner_id, error)
            self._publish(owner, "COMPOSITION_FAILED", {"reason": f"Composition failed: {error}"})
        finally:
            self._composing.discard(owner_id)

    # -- verbs: files ---------------------------------------------------------------------

    def delete_file(self, file_id: str) -> RecordingFile:
        file = self.get_file(file_id)
        self.delete_files([file])
        return file

    def delete_files(self, files: list[RecordingFile], announce: bool = True) -> None:
        """Delete the audio, the metadata and the rows; *_RECORDING_DELETED once per owner."""
        for file in files:
            self.path(file).unlink(missing_ok=True)
            self.metadata_path(file).unlink(missing_ok=True)
            self._store.delete(file.id)
        if not announce:
            return
        for file in {(f.kind, f.owner_id): f for f in files}.values():
            owner = _Session(RecordingOptions(), [], None, file.owner_id)
            try:
                self._owner_of(owner, file)
            except CallError as error:  # the owner is gone from the store too
                log.info("recording %s deleted, its owner unknown: %s", file.id, error)
                continue
            self._publish(owner, "RECORDING_DELETED", None)

    # -- lifecycle ------------------------------------------------------------------------

    def recover(self) -> int:
        """Files a previous process was writing when it died: each WAV's header is repaired
        from the audio on disk, the file becomes READY (FAILED when it holds no audio), and
        its owner's *_RECORDING_READY (or _FAILED) is published. Returns how many files."""
        orphans = self._store.unfinished()
        owners: dict[tuple[OwnerKind, str], list[RecordingFile]] = {}
        for file in orphans:
            self._repair(file)
            owners.setdefault((file.kind, file.owner_id), []).append(file)
        self._write_metadata(orphans)
        for files in owners.values():
            session = _Session(RecordingOptions(custom_data=files[0].custom_data), files, None, "")
            try:
                self._owner_of(session, files[0])
            except CallError as error:
                log.warning("recovered recording %s has no owner: %s", files[0].id, error)
                continue
            if all(file.failed for file in files):
                self._publish(session, "FAILED", self._failed_properties(session, files[0].reason))
            else:
                self._publish(session, "READY", {"recording": self._view(files)})
        return len(orphans)

    def _repair(self, file: RecordingFile) -> None:
        try:
            data = repair_wav(self.path(file), file.channels)
        except OSError as error:
            log.warning("recording %s could not be repaired: %s", file.id, error)
            data = 0
        seconds = wav_seconds(data, file.channels)
        if data:
            file.status, file.reason = FileStatus.READY, None
            file.size, file.duration = HEADER_SIZE + data, round(seconds)
            file.end_time = file.end_time or file.start_time + timedelta(seconds=seconds)
            file.creation_time = self._clock()
        else:
            self.path(file).unlink(missing_ok=True)
            file.status = FileStatus.FAILED
            file.reason = "The gateway stopped while recording, before any audio was written"
            file.end_time = file.end_time or file.start_time
        self._store.save(file)

    def _owner_of(self, session: _Session, file: RecordingFile) -> None:
        """Fill in the session's owner from the store (CallError when it is not there)."""
        if file.kind is OwnerKind.CONFERENCE:
            session.conference = self._conference_control().get(file.owner_id)
        elif file.kind is OwnerKind.DIALOG:
            session.dialog = self._dialogs.get(file.owner_id)
        else:
            session.call = self._calls.get(file.owner_id)

    async def close(self) -> None:
        """Stop what still records (CallControl.close ends the calls first) and wait until every
        file is finished."""
        for sessions in self._sessions.values():
            for session in list(sessions.values()):
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
        """Create the files and tap (or beep first); a file that cannot be created fails the
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
        for file in session.files:
            self._store.save(file)
        if session.beep is not None:
            self._bridges.play(session.tapped, session.beep)
        else:
            self._tap(session)
        return True

    def _tap(self, session: _Session) -> None:
        assert session.recorder is not None
        if session.conference is not None:
            self._conference_control().tap(session.tapped, session.recorder)
        else:
            self._bridges.tap(session.tapped, session.recorder)
        if session.options.max_duration:
            loop = asyncio.get_running_loop()
            session.timer = loop.call_later(session.options.max_duration, self._stop, session)

    def _untap(self, session: _Session) -> None:
        if session.beep is not None:
            self._bridges.unplay(session.tapped, session.beep)
            return  # never tapped
        assert session.recorder is not None
        if session.conference is not None:
            self._conference_control().untap(session.tapped, session.recorder)
        else:
            self._bridges.untap(session.tapped, session.recorder)

    def _beeped(self, session: _Session) -> None:
        """The call has heard the whole beep: the recording begins now."""
        if self._sessions[session.kind].get(session.owner) is not session:
            return
        assert session.beep is not None and session.recorder is not None
        self._bridges.unplay(session.tapped, session.beep)
        session.beep = None
        session.recorder.begin()
        for file in session.files:
            file.start_time = self._clock()
            self._store.save(file)
        self._tap(session)

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
        table = self._sessions[session.kind]
        if table.get(session.owner) is not session:
            return False
        del table[session.owner]
        if session.timer is not None:
            session.timer.cancel()
        self._untap(session)
        return True

    def _stop(self, session: _Session) -> None:
        if not self._detach(session):
            return
        assert session.recorder is not None
        session.recorder.stop()
        moment = self._clock()
        for file in session.files:
            file.end_time = file.end_time or moment
        start = min((file.start_time for file in session.files), default=moment)
        properties: dict[str, Any] = {
            "startTime": format_time(start),
            "endTime": format_time(moment),
        }
        if session.call is not None:
            properties["fileId"] = session.files[0].id
        self._publish(session, "STOPPED", properties)
        self._track(self._finish(session))

    async def _finish(self, session: _Session) -> None:
        """Close the files off the loop, then READY (or FAILED if they cannot be finished)."""
        recorder = session.recorder
        assert recorder is not None
        try:
            await asyncio.to_thread(recorder.close)
        except OSError as error:
            self._fail(session, f"The recording file could not be written: {error}")
            return
        if recorder.error is not None:
            self._fail(session, f"The recording file could not be written: {recorder.error}")
            return
        if not session.files:
            self._fail(session, "Nobody with audio was in the conference while it was recorded")
            return
        writers = {writer.path: writer for writer in recorder.writers}
        moment = self._clock()
        for file in session.files:
            writer = writers.get(self.path(file))
            if writer is None:  # failed when its participant joined
                continue
            file.size, file.duration = HEADER_SIZE + writer.data_size, round(writer.seconds)
            file.creation_time, file.status = moment, FileStatus.READY
            self._store.save(file)
        await asyncio.to_thread(self._write_metadata, session.files)
        self._publish(session, "READY", {"recording": self._view(session.files)})

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
        self._write_metadata(session.files)
        self._publish(session, "FAILED", self._failed_properties(session, reason))

    def _write_metadata(self, files: list[RecordingFile]) -> None:
        """``<fileId>.json`` beside each file: what its row holds, written whole or not at all
        (a temporary file renamed). A directory that cannot be written loses only this."""
        for file in files:
            target = self.metadata_path(file)
            temporary = target.with_name(target.name + ".part")
            try:
                temporary.write_text(json.dumps(file_metadata(file), indent=2))
                os.replace(temporary, target)
            except OSError as error:
                log.warning("metadata of recording %s not written: %s", file.id, error)

    # -- events ---------------------------------------------------------------------------

    @staticmethod
    def _started_properties(session: _Session) -> dict[str, Any]:
        options = session.options
        properties: dict[str, Any] = {"recordingType": options.recording_type}
        if session.call is not None:
            properties["fileId"] = session.files[0].id
            properties["maxDuration"] = options.max_duration
            properties["maxSilence"] = options.max_silence
            properties["beep"] = options.beep or None
        else:
            properties["composition"] = options.composition
        properties["filePrefix"] = options.file_prefix
        properties["customData"] = options.custom_data or None
        return {k: v for k, v in properties.items() if v is not None}

    @staticmethod
    def _failed_properties(session: _Session, reason: str | None) -> dict[str, Any]:
        properties: dict[str, Any] = {
            "reason": reason,
            "recordingCustomData": session.options.custom_data or None,
        }
        if session.call is not None and session.files:
            properties["fileId"] = session.files[0].id
        return {k: v for k, v in properties.items() if v is not None}

    def _view(self, files: list[RecordingFile]) -> dict[str, Any]:
        """The events' ``CallRecording``, ``DialogRecording`` or ``ConferenceRecording``."""
        return recording_view(files, public=False)

    def _publish(self, session: _Session, what: str, properties: dict[str, Any] | None) -> None:
        """``<OWNER>_<what>``: ``what`` is RECORDING_STARTED... or COMPOSITION_FINISHED...,
        bare RECORDING states get their prefix here."""
        moment = self._clock()
        event_type = what if "_" in what else f"RECORDING_{what}"
        if session.call is not None:
            leg = self._calls.live(session.call.id) or session.call
            event = call_envelope(f"CALL_{event_type}", leg, moment, properties)  # type: ignore[arg-type]
            self._sink.publish(event, order_key(leg))
        elif session.dialog is not None:
            dialog = session.dialog
            event = dialog_envelope(f"DIALOG_{event_type}", dialog, moment, properties)  # type: ignore[arg-type]
            self._sink.publish(event, dialog.parent_call_id)
        else:
            conference = session.conference
            assert conference is not None
            event = conference_envelope(f"CONFERENCE_{event_type}", conference, moment, properties)
            self._sink.publish(event, conference.id)

    def _track(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


# -- views ----------------------------------------------------------------------------------


def file_metadata(file: RecordingFile) -> dict[str, Any]:
    """The ``<fileId>.json`` beside a file: its ``PublicRecordingFile`` and whose it is."""
    extra = {
        "status": file.status.value,
        "reason": file.reason,
        "recordingType": file.recording_type,
        "channels": file.channels,
        "callId": file.call_id,
        "dialogId": file.dialog_id,
        "conferenceId": file.conference_id,
        "conferenceName": file.conference_name,
        "callsConfigurationId": file.calls_configuration_id,
        "platform": file.platform,
        "endpoint": file.endpoint,
        "direction": file.direction,
        "filePrefix": file.file_prefix,
        "multichannelMappingData": file.channel_map,
    }
    view = recording_file_view(file, public=True)
    return {**view, **{k: v for k, v in extra.items() if v is not None}}


def recording_view(files: list[RecordingFile], public: bool) -> dict[str, Any]:
    """The files of one owner: ``CallRecording``, ``DialogRecording`` or
    ``ConferenceRecording`` (``Public*`` when ``public``)."""
    first = files[0]
    if first.kind is OwnerKind.CALL:
        return call_recording_view(files, public)
    view = _dialog_view(files, public)
    maps = {file.id: file.channel_map for file in files if file.channel_map and not public}
    for composed in view.get("composedFiles", []):  # declared in events' RecordingFile only
        if composed["id"] in maps:
            composed["multichannelMappingData"] = maps[composed["id"]]
    if first.kind is OwnerKind.DIALOG:
        return view
    view.pop("dialogId", None)
    view.pop("entityId", None)  # ConferenceRecording has an applicationId only
    head = {"conferenceId": first.conference_id, "conferenceName": first.conference_name}
    return {**{k: v for k, v in head.items() if v is not None}, **view}
