"""The observing schedule the broker pre-warms for: visits as Rubin's ``next_visit`` announces them.

Rubin announces each visit before it is taken: the ScriptQueue's ``nextVisit`` event
(https://ts-xml.lsst.io/sal_interfaces/ScriptQueue.html#nextvisit), fanned out at USDF to one message per active
detector (lsst-dm/next_visit_fan_out ``src/shared/visit.py``, ``NextVisitModelBase`` and ``add_detectors``;
commit 4add312). The fields enclave uses, with the meanings prompt processing gives them
(lsst-dm/prompt_processing ``python/shared/visit.py``, ``BareVisit``; commit ee8e3a3):

- ``groupId``: "Observatory-specific ID", one per visit;
- ``startTime``: "expected start time in TAI", Unix seconds on the TAI scale; 0 when unknown, which is every
  summit message today: the ScriptQueue never fills it in (lsst-ts/ts_scriptqueue
  ``python/lsst/ts/scriptqueue/script_queue.py`` ``put_next_visit`` sets scriptSalIndex, groupId and the script's
  metadata only; commit 688c7ad), and an unset SAL double is 0.0 (lsst-ts/ts_xml
  ``python/lsst/ts/xml/field_info.py``, ``default_scalar_value = python_type()``; commit a724e1ac);
- ``private_sndStamp``: when the message was sent, TAI Unix seconds: the start estimated when startTime is 0;
- ``duration``: "Estimated duration of the script, excluding slewing to the initial position required by the
  script" (lsst-ts/ts_xml ScriptQueue_Events.xml nextVisit ~135; commit a724e1ac), seconds;
- ``nimages``: "number of snaps expected, 0 if unknown";
- ``instrument``: the instrument's short name;
- ``detectors``: enclave's own field: how many detector jobs the visit fans out to (the fan-out sends one
  message per active detector; LSSTCam has 189 science detectors).

A next_visit message, as the summit sends it before the fan-out, can be pushed as it is: its other fields
(salIndex, position, filters, the other private_* …) are accepted and dropped. Anything else is refused by
name, so a typo is not silently ignored. The fanned-out messages (one per detector, the same groupId) may be
pushed as they come: copies are dropped (``ObservingSchedule``); set ``detectors`` for the count.

A schedule also says over which span it is *complete* (``complete_from`` … ``complete_until``, Unix UTC):
no visit it does not list starts inside it. A night's plan pushed at noon is complete from the push to its last
visit; a visit-by-visit feed is complete up to the furthest time it has announced. Outside that span the broker
falls back to twilight (docs/broker.md, "Observing schedule").
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, field_validator, model_validator
from pydantic_core import PydanticCustomError

from enclave.clock import stamp
from enclave.errors import InputError, Problem
from enclave.spec.models import refuse_bool_as_number

TAI_MINUS_UTC_S = 37.0
"""TAI − UTC since 2017-01-01 (IERS Bulletin C: no leap second has been announced since; astropy's
``Time(t, format="unix_tai").unix`` is 37 s less, which is how prompt processing converts ``startTime``)."""

MAX_DURATION_S = 86_400.0
"""ts_xml's duration is an unbounded double; a script longer than a day is no visit to pre-warm for (a 90-minute
calibration block is)."""

MAX_VISITS = 20_000
"""Far above a night's 1,000 visits (DMTN-135): a bound on what one push may store."""

NEXT_VISIT_EXTRAS = frozenset({
    "salIndex", "scriptSalIndex", "coordinateSystem", "position", "rotationSystem", "cameraAngle", "filters",
    "dome", "survey", "totalCheckpoints", "detector", "private_efdStamp", "private_kafkaStamp",
    "private_identity", "private_revCode", "private_origin", "private_seqNum", "private_rcvStamp"})
"""The other fields of a next_visit message (``BareVisit``, ``SummitVisit``, ``FannedOutVisit``): accepted, unused."""

HORIZON_PAST_S = 86_400.0
HORIZON_AHEAD_S = 7 * 86_400.0
"""A pushed schedule's times must lie within now − 1 day … now + 7 days (``check_horizon``): a night plan is pushed
the day before at the earliest, a feed's visits are seconds to minutes ahead, and a day back lets the visit under
way and a late push through. Anything outside is a unit slip (milliseconds, Kafka's timestamps) or a wrong
scale, and would otherwise decide the pre-warm for years."""

GroupId = Annotated[str, StringConstraints(min_length=1, max_length=64, strip_whitespace=True)]

GROUP_ID_TWICE = ("visits[{i}] has visits[{j}]'s groupId {group} but a different {differs}: a groupId is one visit; "
                  "push it once, or give the rescheduled one its new groupId")
"""The message of a groupId announced twice with different content; ``parse`` numbers the two as in the document."""


class Visit(BaseModel):
    """One scheduled visit, in next_visit's own field names."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)
    _no_bool_as_number = field_validator("*", mode="before")(refuse_bool_as_number)  # `duration: yes` is no 1 s

    groupId: GroupId
    startTime: float = Field(default=0.0, ge=0, description="Expected start of the visit, TAI Unix seconds "
                             "(next_visit); 0: unknown, estimated from private_sndStamp.")
    duration: float = Field(gt=0, le=MAX_DURATION_S, description="The script's estimated duration, excluding the "
                            "slew to its first position, seconds (next_visit).")
    nimages: int = Field(default=1, ge=0, le=2**31 - 1, description="Snaps expected; 0 if unknown (next_visit).")
    instrument: str = Field(default="", max_length=64)
    detectors: int = Field(default=189, ge=1, le=10_000, description="Detector jobs the visit fans out to.")
    private_sndStamp: float | None = Field(default=None, ge=0, description="When next_visit was sent, TAI Unix "
                                           "seconds: the start estimated when startTime is 0.")

    @model_validator(mode="before")
    @classmethod
    def _drop_next_visit_extras(cls, data: Any) -> Any:
        if isinstance(data, dict):
            return {k: v for k, v in data.items() if k not in NEXT_VISIT_EXTRAS}
        return data

    @model_validator(mode="after")
    def _start_known_or_estimable(self) -> Visit:
        if not self.startTime and self.private_sndStamp is None:
            raise ValueError("startTime is 0 or missing (unknown) and there is no private_sndStamp to estimate it "
                             "from: give startTime (TAI Unix seconds) or push the next_visit message whole")
        return self

    @property
    def estimated(self) -> bool:
        """startTime is unknown (0), so start and readout are estimated from when the message was sent."""
        return not self.startTime

    @property
    def start(self) -> float:
        """The visit's start, Unix seconds (UTC), enclave's clock. Unknown (startTime 0): the send time, the
        earliest it can start, as prompt processing itself takes it (lsst-dm/prompt_processing
        ``python/activator/middleware_interface.py`` ~1119-1120, ``Time(self.visit.private_sndStamp,
        format="unix_tai")``, "TODO: replace with self.visit.startTime after DM-38635"; commit ee8e3a3)."""
        tai = self.private_sndStamp if self.estimated and self.private_sndStamp is not None else self.startTime
        return tai - TAI_MINUS_UTC_S

    @property
    def readout(self) -> float:
        """When its images are read out and its detector jobs arrive (Unix UTC): start + duration; with startTime
        unknown, start + 2 × duration, the activator's heuristic: the announced script waits for the one running
        now (lsst-dm/prompt_processing ``python/activator/activator.py`` ~625-628, "take the upcoming script's
        duration and multiply by 2 to include the currently executing script"; commit ee8e3a3)."""
        return self.start + (2 if self.estimated else 1) * self.duration


class ObservingSchedule(BaseModel):
    """The visits ahead, each once and ascending by start, and the span over which the list is complete."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)
    _no_bool_as_number = field_validator("*", mode="before")(refuse_bool_as_number)

    visits: tuple[Visit, ...] = Field(default=(), max_length=MAX_VISITS)
    complete_from: float | None = Field(
        default=None, ge=0, description="Unix UTC: no unlisted visit starts from here on. Default: when it was pushed.")
    complete_until: float | None = Field(
        default=None, ge=0, description="Unix UTC: … up to here. Default: the last visit's readout.")
    source: str = Field(default="", max_length=200, description="Where it came from (a file, the API, a feed).")

    @field_validator("visits")
    @classmethod
    def _once_each_in_order(cls, visits: tuple[Visit, ...]) -> tuple[Visit, ...]:
        """Each groupId once, by start. Kafka delivers at least once and the fan-out sends one copy per detector
        (lsst-dm/next_visit_fan_out ``src/main.py``; commit 4add312), so a copy that says the same (its detector
        and private_* stamps aside) is dropped; a groupId saying two different things is refused. A feed may
        arrive out of order: sorted, not refused."""
        first: dict[str, tuple[int, Visit]] = {}
        for i, v in enumerate(visits):
            if v.groupId not in first:
                first[v.groupId] = (i, v)
                continue
            j, u = first[v.groupId]
            if _content(u) != _content(v):
                differs = ", ".join(k for k in _content(u) if _content(u)[k] != _content(v)[k])
                raise PydanticCustomError("group_id_twice", GROUP_ID_TWICE,
                                          {"i": i, "j": j, "group": repr(v.groupId), "differs": differs})
        return tuple(sorted((v for _, v in first.values()), key=lambda v: v.start))

    @model_validator(mode="after")
    def _span(self) -> ObservingSchedule:
        lo, hi = self.complete_from, self.complete_until
        if lo is not None and hi is not None and hi < lo:
            raise ValueError(f"complete_until {hi} is before complete_from {lo}")
        return self

    def for_instrument(self, instrument: str) -> tuple[ObservingSchedule, dict[str, int]]:
        """Its visits taken with ``instrument``, and how many others it had, by instrument ("" when blank). One
        prompt processing deployment serves one instrument, and the fan-out routes each message by its instrument
        and drops blank ones, "Assuming it's not an observation" (lsst-dm/next_visit_fan_out ``src/main.py``
        ~179-181; commit 4add312): a LATISS visit (AuxTel's queue, salIndex 2: lsst-ts/ts_xml
        ``python/lsst/ts/xml/enums/ScriptQueue.py`` ``SalIndex.AUX_TEL``; commit a724e1ac) or a script that takes
        no images does not bring LSSTCam's detector jobs."""
        dropped: dict[str, int] = {}
        for v in self.visits:
            if v.instrument != instrument:
                dropped[v.instrument] = dropped.get(v.instrument, 0) + 1
        if not dropped:
            return self, dropped
        kept = tuple(v for v in self.visits if v.instrument == instrument)
        return self.model_copy(update={"visits": kept}), dropped  # a subset of a valid schedule is valid

    def last_readout(self) -> float | None:
        """The latest readout of its visits: not the last-starting visit's, as a long visit (a calibration block)
        listed before a short one is read out after it. Not cached: ``model_copy`` (``for_instrument``) would carry
        a cached value over to a copy with other visits."""
        return max((v.readout for v in self.visits), default=None)

    def known_until(self) -> float | None:
        """The end of the span this schedule is complete over: ``complete_until``, else the latest readout."""
        if self.complete_until is not None:
            return self.complete_until
        return self.last_readout()


def parse(data: Any, where: str) -> ObservingSchedule:
    """A schedule from parsed YAML/JSON: a mapping with ``visits`` (and optionally ``complete_from``,
    ``complete_until``, ``instrument`` and ``detectors`` defaults for every visit), or a bare list of next_visit
    messages. Every problem is reported with its place (``where``: the file) and a fix."""
    if isinstance(data, list):
        data = {"visits": data}
    if not isinstance(data, dict):
        raise InputError([Problem(where, f"is a {type(data).__name__}, not a schedule",
                                  "write a mapping with `visits: [...]` or a list of next_visit messages")])
    data = dict(data)  # the caller's document stays as it was
    defaults = {k: data.pop(k) for k in ("instrument", "detectors") if k in data}
    visits = data.get("visits")
    index: list[int] = []  # each kept visit's place in the document, for the errors
    if isinstance(visits, list):
        index = _without_canceled(visits)
        data["visits"] = [{**defaults, **visits[i]} if isinstance(visits[i], dict) else visits[i] for i in index]
    try:
        return ObservingSchedule.model_validate(data)
    except ValidationError as exc:
        sent = visits if isinstance(visits, list) else []
        problems = [_problem(where, _as_sent(e, index, sent, defaults)) for e in exc.errors()]
        raise InputError(list(dict.fromkeys(problems))) from exc  # a bad default once, not once per visit


def _as_sent(error: Any, index: list[int], sent: list[Any], defaults: dict[str, Any]) -> Any:
    """``error`` placed as in the document: its visit numbered among the entries sent, not among the visits a cancel
    left (review, stop 48: `visits[1]` named the fourth entry), in its location and, for a groupId sent twice, in
    its message (review, stop 53); a default the visit took from the top level (``instrument``, ``detectors``) at
    the top level, where it is written (review, stop 53: `detectors: 0` was reported at every visit)."""
    loc = error["loc"]
    if error["type"] == "group_id_twice" and index:
        ctx = {**error["ctx"], "i": index[error["ctx"]["i"]], "j": index[error["ctx"]["j"]]}
        return {**error, "msg": GROUP_ID_TWICE.format(**ctx)}
    if len(loc) >= 2 and loc[0] == "visits" and isinstance(loc[1], int) and loc[1] < len(index):
        entry = sent[index[loc[1]]]
        if len(loc) == 3 and loc[2] in defaults and isinstance(entry, dict) and loc[2] not in entry:
            return {**error, "loc": (loc[2],)}
        return {**error, "loc": ("visits", index[loc[1]], *loc[2:])}
    return error


def _is_cancel(entry: Any) -> bool:
    """A nextVisitCanceled message: the ScriptQueue's {scriptSalIndex, groupId} (lsst-ts/ts_xml
    ``ScriptQueue_Events.xml`` nextVisitCanceled, commit a724e1ac), sent when a script whose nextVisit went out is
    removed or moved down the queue (lsst-ts/ts_scriptqueue ``queue_model.py`` ``clear_group_id``, commit
    688c7ad). A nextVisit carries those two fields too, and always its duration."""
    return isinstance(entry, dict) and "groupId" in entry and "scriptSalIndex" in entry and not (
        {"duration", "startTime", "nimages"} & entry.keys())


def _without_canceled(entries: list[Any]) -> list[int]:
    """The entries in the order sent, each nextVisitCanceled taking back every visit of its groupId announced
    before it, and then dropped itself: a feed pushes the messages it holds as they came. A rescheduled script is
    announced again under a new groupId (``queue_model.py`` sets one when it reaches the top again). A cancel of a
    groupId this document did not announce takes back nothing: the push replaces the stored schedule, so a visit
    of an earlier push is gone unless announced again. Returns the places of the entries kept, in order."""
    kept: list[int] = []
    for i, entry in enumerate(entries):
        if _is_cancel(entry):
            kept = [k for k in kept if not (isinstance(entries[k], dict)
                                            and entries[k].get("groupId") == entry["groupId"])]
        else:
            kept.append(i)
    return kept


def _content(v: Visit) -> dict[str, Any]:
    """What a visit says, its private_* send stamp aside (the detector is dropped on reading)."""
    return v.model_dump(exclude={"private_sndStamp"})


def check_horizon(schedule: ObservingSchedule, now: float, where: str = "observing schedule") -> None:
    """Refuse a schedule whose times lie outside ``now − HORIZON_PAST_S … now + HORIZON_AHEAD_S`` (Unix UTC),
    each problem named by its field; run before the schedule is stored. A visit is named by its groupId, which
    says the same in the file or request it came from: its place there is lost once copies are dropped and the
    visits sorted by start (review, stop 53: `visits[1]` named a file's first entry)."""
    lo, hi = now - HORIZON_PAST_S, now + HORIZON_AHEAD_S
    fix = ("give Unix seconds (startTime and private_sndStamp on the TAI scale, complete_* UTC), not milliseconds, "
           "within 1 day before and 7 days after the push")
    problems = []
    for v in schedule.visits:
        if not lo <= v.start <= hi:
            field = "private_sndStamp" if v.estimated else "startTime"
            problems.append(Problem(f"{where}: visits[groupId={v.groupId!r}].{field}",
                                    f"{getattr(v, field)} ({stamp(v.start)}) is outside the horizon", fix))
    for field in ("complete_from", "complete_until"):
        t = getattr(schedule, field)
        if t is not None and not lo <= t <= hi:
            problems.append(Problem(f"{where}: {field}", f"{t} ({stamp(t)}) is outside the horizon", fix))
    if problems:
        raise InputError(problems)


def _problem(where: str, error: Any) -> Problem:
    loc = ".".join(f"[{p}]" if isinstance(p, int) else str(p) for p in error["loc"]).replace(".[", "[")
    place = f"{where}: {loc}" if loc else where
    if error["type"] == "extra_forbidden" and error["loc"][:1] != ("visits",):
        return Problem(place, "is not a field of a schedule",
                       "use visits, complete_from, complete_until, source, instrument, detectors")
    if error["type"] == "extra_forbidden":
        return Problem(place, "is not a field of a scheduled visit",
                       "use groupId, startTime (TAI Unix seconds), duration, nimages, instrument, detectors")
    if error["type"] == "missing":
        return Problem(place, "is missing",
                       "every visit needs groupId and duration, and startTime or private_sndStamp (next_visit)")
    if error["type"] == "value_error":  # our own validators' messages, without pydantic's "Value error, " prefix
        return Problem(place, str(error["ctx"]["error"]), "fix the value (docs/broker.md, \"Observing schedule\")")
    return Problem(place, str(error["msg"]), "fix the value (docs/broker.md, \"Observing schedule\")")
