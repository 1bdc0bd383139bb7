"""Operators that submit a Runway generation on KIE.ai and wait for its video.

Every generation costs credits, so these operators never pay twice for one task instance: the
created Runway task id is stored durably before any wait (Airflow 3.3's ``task_state_store``, or an
Airflow Variable on older versions) and a later try attaches to that task while it is pending,
running or succeeded. Only a failed task is created anew.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import quote

from airflow.providers.common.compat.sdk import (
    AirflowFailException,
    BaseOperator,
    ObjectStoragePath,
    XComArg,
    conf,
)

from airflow_provider_runway.core import (
    AlephRequest,
    ExtendRequest,
    GenerateRequest,
    RunwayCreateUncertainError,
    RunwayError,
    RunwayParameterError,
    RunwayRateLimitedError,
    RunwayTask,
    RunwayTaskTimeoutError,
    RunwayTransportError,
    RunwayUnavailableError,
    TaskFamily,
    TaskStatus,
    ValidationLimits,
)
from airflow_provider_runway.core.models import redact_url
from airflow_provider_runway.core.parameters import (
    PARSE_TIME_LIMITS,
    PLACEHOLDERS,
    coerce_rendered,
    is_templated,
    to_seconds,
)
from airflow_provider_runway.core.results import task_result
from airflow_provider_runway.core.retry import waits_for_capacity
from airflow_provider_runway.core.wait import (
    Outcome,
    WaitDecision,
    WaitPolicy,
    WaitState,
    deadline_for,
)
from airflow_provider_runway.core.webhooks import plain_http_callback_warning
from airflow_provider_runway.core.wire import status_path
from airflow_provider_runway.exceptions import RunwayWaitError
from airflow_provider_runway.hooks.runway import RunwayHook
from airflow_provider_runway.links.runway import (
    RUNWAY_RESULT_URL_XCOM_KEY,
    RUNWAY_TASK_ID_XCOM_KEY,
    RunwayTaskLink,
)
from airflow_provider_runway.operators._capacity import MIN_DEFERRED_PAUSE, CapacityWait, pause_trigger
from airflow_provider_runway.operators._lineage import (
    RunOutcome,
    openlineage_facets,
    report_remote_failure,
    report_success,
)
from airflow_provider_runway.operators._resumable import record_key, remember
from airflow_provider_runway.transfer.uploads import (
    INPUT_FIELDS,
    InputSource,
    is_upload_input,
    take_file_inputs,
)
from airflow_provider_runway.triggers.runway import RunwayTaskTrigger
from airflow_provider_runway.triggers.task_end import task_end_supported, worker_end_reasons
from airflow_provider_runway.version_compat import AIRFLOW_V_3_0_PLUS, AIRFLOW_V_3_3_PLUS, storable_result

if AIRFLOW_V_3_3_PLUS:
    from airflow.providers.common.compat.sdk import ResumableJobMixin
else:  # below 3.3 common-compat's stand-in submits anew on every try: keep the id in a Variable instead
    from airflow_provider_runway.operators._resumable import (  # type: ignore[assignment]
        VariableResumableJobMixin as ResumableJobMixin,
    )

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context
    from airflow.sdk.definitions.mappedoperator import OperatorPartial

    from airflow_provider_runway.core import CreateRequest

#: XCom key of the ``downloadUrl`` each uploaded input was sent as (field name to URL).
RUNWAY_UPLOADED_INPUTS_XCOM_KEY = "runway_uploaded_inputs"
#: Errors on create after which no task exists, so an Airflow retry is safe (the hook reports a
#: create that may have happened as RunwayCreateUncertainError instead).
_RETRYABLE_CREATE_ERRORS = (RunwayRateLimitedError, RunwayUnavailableError, RunwayTransportError)
#: Most seconds a deferred wait ends before ``execution_timeout`` on Airflow 2 (see ``_defer_wait``).
EXECUTION_TIMEOUT_RESERVE = 5.0


@dataclass
class RunwayTry:
    """One Airflow try of a Runway operator, from its create (or attach) to its end.

    A try creates the Runway task (or attaches to the one an earlier try stored), waits for it (in place, or
    deferred to the triggerer), and ends with the result or a failure; while KIE has no capacity it pauses
    and creates again. Each entry point of the operator (``execute``, ``execute_complete``,
    ``create_after_capacity_wait``) starts one; what a resumed try needs from before its deferral travels in
    the deferral's ``kwargs`` (:meth:`resume_kwargs`), plain JSON.
    """

    #: When the try started: ``execution_timeout`` counts from it where the task instance has no start date.
    started: float | None = None
    request: CreateRequest | None = None
    #: File inputs still to upload, by field name.
    uploads: dict[str, InputSource] = field(default_factory=dict)
    #: Field name to the ``downloadUrl`` each file input was uploaded as, in this try.
    uploaded: dict[str, str] = field(default_factory=dict)
    capacity: CapacityWait = field(default_factory=CapacityWait)
    #: The Runway task waited for, as last read (or as created).
    task: RunwayTask | None = None
    #: When this try created that task (``None``: it attached to an earlier try's), and last read it.
    created_at: float | None = None
    last_read_at: float | None = None
    #: How the generation ended, for the lineage methods.
    outcome: RunOutcome | None = None
    #: Tasks KIE failed for capacity before charging, to the task this try created in their place.
    replaced: dict[str, str] = field(default_factory=dict)

    def current(self, task_id: str) -> str:
        """``task_id``, or the task that replaced it in this try."""
        while task_id in self.replaced:
            task_id = self.replaced[task_id]
        return task_id

    def created(self, task_id: str, family: TaskFamily) -> None:
        """This try created ``task_id`` just now."""
        self.task = RunwayTask(task_id=task_id, family=family, status=TaskStatus.PENDING)
        self.created_at, self.last_read_at = time.time(), None

    def wait_state(self) -> dict[str, Any] | None:
        """A deferred wait for a task this try created starts at its creation, so reads follow that clock."""
        if self.created_at is None:
            return None
        seen = self.last_read_at is not None
        return WaitState(started_at=self.created_at, seen=seen, last_read_at=self.last_read_at).to_dict()

    def resume_kwargs(self, try_number: int | None) -> dict[str, Any] | None:
        """What the resumed try needs: its number, a wait for a slot in progress, the uploaded inputs' URLs."""
        kwargs: dict[str, Any] = {}
        if try_number is not None:
            kwargs["deferred_try"] = try_number
        if self.capacity.waiting:
            kwargs["capacity_since"] = self.capacity.since
            kwargs["capacity_attempts"] = self.capacity.attempts
        if self.uploaded:  # a create after a pause for capacity reuses the uploads
            kwargs["uploaded"] = self.uploaded
        return kwargs or None


class RunwayBaseOperator(ResumableJobMixin, BaseOperator):
    """
    Shared behaviour of the Runway operators: create a task, store its id, wait, return the result.

    :param runway_conn_id: Connection to KIE.ai (password: API key; host: base URL).
    :param wait_for_completion: Wait until the Runway task finishes. When False, return right after
        creation with ``task_id``, ``family`` and ``state``.
    :param deferrable: Wait in the triggerer instead of holding a worker slot.
    :param poll_interval: Seconds between status reads.
    :param timeout: How long to wait for the task, in seconds or as a timedelta; the default suits the
        family (30 minutes for Runway, 60 for Aleph). A timeout fails this try; a retry attaches to the
        same Runway task and waits again, without paying twice.
    :param runway_retry_limit: Retries of one HTTP call on transient errors (429, 455, 5xx, timeouts);
        ``None`` (the default) uses the connection's ``retry_limit`` extra, else 5.
    :param runway_retry_delay: Initial delay between those retries, in seconds; ``None`` (the default)
        uses the connection's ``retry_delay`` extra, else 1.
    :param download_to: Folder or object-storage URL (templated). When set and the task succeeded,
        the video and thumbnail are copied there and their paths added to the return value.
    :param retry_remote_failures: A failed generation ends the task without retries by default, since
        a retry pays again. Set True to let Airflow retries create a new Runway task after a failure.
    :param durable: Store the Runway task id so a retry attaches to it (True by default).
    :param first_poll_delay: Seconds from the creation of the task before the first status read of a
        deferred wait (a fresh task is rarely done at once).
    :param expected_duration: How long the generation should take, in seconds or as a timedelta,
        counted from the creation of the task (from the start of the deferred wait for a task this try
        did not create). Reads then cluster around that time, so the end is
        seen about a second after it happens without more reads per video; ``None`` (the default) uses
        what the triggerer learned from earlier waits of the same family, duration and quality.
    :param end_in_triggerer: With ``deferrable``, let a successful task end in the triggerer, with the
        same XComs, when Airflow would do nothing more at a worker's end: no ``download_to``, outlets,
        success or execute callbacks, execute hooks, ``map_index_template`` or mapped task downstream,
        and no listener, custom XCom backend or lineage backend in the deployment (see
        :func:`~airflow_provider_runway.triggers.task_end.worker_end_reasons`). Failures and timeouts
        always resume on a worker.
    """

    family: ClassVar[TaskFamily] = TaskFamily.RUNWAY
    default_timeout: ClassVar[timedelta] = timedelta(minutes=30)
    request_class: ClassVar[type[GenerateRequest] | type[ExtendRequest] | type[AlephRequest]] = GenerateRequest
    request_fields: ClassVar[tuple[str, ...]] = ()
    external_id_key = RUNWAY_TASK_ID_XCOM_KEY
    operator_extra_links = (RunwayTaskLink(),)
    ui_color = "#1b1b1b"
    ui_fgcolor = "#ffffff"

    def __init__(
        self,
        *,
        runway_conn_id: str = "runway_default",
        wait_for_completion: bool = True,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        poll_interval: float = 5.0,
        timeout: float | timedelta | None = None,
        runway_retry_limit: int | None = None,
        runway_retry_delay: float | None = None,
        download_to: str | ObjectStoragePath | None = None,
        retry_remote_failures: bool = False,
        multiple_outputs: bool = True,
        first_poll_delay: float | timedelta = 0.0,
        expected_duration: float | timedelta | None = None,
        end_in_triggerer: bool = True,
        durable: bool = True,
        **kwargs: Any,
    ) -> None:
        # ``durable`` is the resume mixin's; named here too, so ``.partial(durable=...)`` accepts it on every Airflow
        # (its check of the arguments reads this signature, not the mixin's, before 3.3).
        super().__init__(durable=durable, multiple_outputs=multiple_outputs, **kwargs)
        self.first_poll_delay = (
            0.0 if first_poll_delay in (0, timedelta(0)) else to_seconds(first_poll_delay, "first_poll_delay")
        )
        self.expected_duration = (
            None if expected_duration is None else to_seconds(expected_duration, "expected_duration")
        )
        self.end_in_triggerer = end_in_triggerer
        self.runway_conn_id = runway_conn_id
        self.wait_for_completion = wait_for_completion
        self.deferrable = deferrable
        self.poll_interval = to_seconds(poll_interval, "poll_interval")
        self.timeout = to_seconds(timeout if timeout is not None else self.default_timeout, "timeout")
        self.runway_retry_limit = runway_retry_limit
        self.runway_retry_delay = runway_retry_delay
        self.download_to = download_to
        self.retry_remote_failures = retry_remote_failures
        self.runway_task_id: str | None = None
        self._try = RunwayTry()

    # -- validation ---------------------------------------------------------------------------

    def _request_values(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.request_fields}

    def validate_static(self) -> None:
        """Validate the literal parameters; templated ones are checked again once rendered."""
        self.validate_literals(self._request_values())

    @classmethod
    def validate_literals(cls, given: Mapping[str, Any]) -> None:
        """Validate the literal values among ``given``; the others stand in with valid placeholders."""
        values = {
            name: PLACEHOLDERS[name] if name not in given or is_templated(given[name]) else given[name]
            for name in cls.request_fields
        }
        for name in INPUT_FIELDS.keys() & values.keys():
            # A file to upload is only looked at on the worker; here its form alone is checked.
            if is_upload_input(values[name], name):
                values[name] = PLACEHOLDERS[name]
        cls.request_class(**values, limits=PARSE_TIME_LIMITS)

    @classmethod
    def partial(cls, **kwargs: Any) -> OperatorPartial:
        """Like :meth:`BaseOperator.partial`, and a literal mistake is a DAG import error here too."""
        cls.validate_literals(kwargs)
        return super().partial(**kwargs)

    def build_request(self, limits: ValidationLimits) -> CreateRequest:
        """The create request from the rendered parameters; fails the task at once when invalid."""
        values = {name: coerce_rendered(name, value) for name, value in self._request_values().items()}
        try:
            uploads = take_file_inputs(values, self.hook.get_upload_limits, PLACEHOLDERS)
            request = self.request_class(**values, limits=limits)
        except RunwayParameterError as err:
            raise AirflowFailException(f"{self.task_id}: {err.message}; no Runway task was created") from err
        self._try.uploads = uploads
        if warning := plain_http_callback_warning(request.callback_url):
            self.log.warning("%s: %s", self.task_id, warning)
        return request

    # -- hooks and context ----------------------------------------------------------------------

    @cached_property
    def hook(self) -> RunwayHook:
        """The Runway hook of this operator."""
        return RunwayHook(self.runway_conn_id, retry_limit=self.runway_retry_limit, retry_delay=self.runway_retry_delay)

    def status_url(self, task_id: str) -> str:
        """The status endpoint of ``task_id`` (the extra link's target until a video exists)."""
        return f"{self.hook.base_url.rstrip('/')}{status_path(self.family)}?taskId={quote(task_id, safe='')}"

    def _announce(self, context: Context, task_id: str) -> None:
        self.runway_task_id = task_id
        ti = context["ti"]
        ti.xcom_push(key=RUNWAY_TASK_ID_XCOM_KEY, value=task_id)
        ti.xcom_push(key=RUNWAY_RESULT_URL_XCOM_KEY, value=self.status_url(task_id))

    # -- one try: create (or attach), defer, wait, end ------------------------------------------------

    def execute(self, context: Context) -> dict[str, Any]:
        self._try = RunwayTry(started=time.time())  # when the task instance has no start date (2.11's dag.test)
        self._try.request = self.build_request(self.hook.get_validation_limits())
        result = self.execute_resumable(context)
        if result is None:  # Airflow 3.3's mixin returns poll_until_complete's None when it reattaches
            result = self.get_job_result(self.runway_task_id, context)
        return storable_result(result, self.multiple_outputs)

    def create_after_capacity_wait(
        self,
        context: Context,
        event: Any = None,
        deferred_try: int | None = None,
        capacity_since: float | None = None,
        capacity_attempts: int = 0,
        uploaded: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        """Resume a deferrable try after its pause for capacity: create again, then wait as usual."""
        self._try = RunwayTry(started=time.time(), capacity=CapacityWait(capacity_since, capacity_attempts))
        request = self.build_request(self.hook.get_validation_limits())
        if uploaded:  # uploaded before the pause: the URLs are reused, nothing is uploaded again
            self._try.uploads, self._try.uploaded = {}, dict(uploaded)
            request = dataclasses.replace(request, **self._try.uploaded)  # type: ignore[arg-type]
        self._try.request = request
        with self._resumed_record(context):
            task_id = self.submit_job(context)
            if self.durable:
                remember(context, self.external_id_key, task_id)
            self.poll_until_complete(task_id, context)
            return storable_result(self.get_job_result(task_id, context), self.multiple_outputs)

    def execute_complete(
        self,
        context: Context,
        event: Mapping[str, Any],
        deferred_try: int | None = None,
        capacity_since: float | None = None,
        capacity_attempts: int = 0,
        uploaded: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        """Turn the trigger's event into the return value, or into the matching failure.

        A task KIE failed for the concurrency limit is created again after a pause in the triggerer, and the
        new task waited for.
        """
        self._try = RunwayTry(
            started=self._try.started,
            capacity=CapacityWait(capacity_since, capacity_attempts),
            uploaded=dict(uploaded or {}),
        )
        if deferred_try is not None and deferred_try != context["ti"].try_number:
            # Airflow 3.0 resumes the retry of a task whose resumed try failed with that earlier try's
            # event: start this try afresh instead (it attaches to the stored Runway task).
            self.log.info(
                "Try %s was resumed with the event of try %s; starting it afresh",
                context["ti"].try_number,
                deferred_try,
            )
            return self.execute(context)
        with self._resumed_record(context):
            return storable_result(self._complete(context, event), self.multiple_outputs)

    @contextmanager
    def _resumed_record(self, context: Context) -> Iterator[None]:
        """The resume record's scope below Airflow 3.3 (the Variable is deleted at the task's final end)."""
        resumed_scope = getattr(self, "resumed_scope", None)
        if resumed_scope is None or not self.durable:
            yield
            return
        with resumed_scope(context):
            yield

    def _try_started_at(self, context: Context) -> float | None:
        """When this Airflow try started (``execution_timeout`` counts from it)."""
        start_date = getattr(context["ti"], "start_date", None)
        return start_date.timestamp() if isinstance(start_date, datetime) else self._try.started

    def _pause_for_capacity(self, context: Context, reason: str, retry_after: float | None = None) -> None:
        """Pause until the next create while KIE cannot take the task: in place, or deferred to a time trigger.

        Deferrable, the pause is a deferral to Airflow's ``DateTimeTrigger`` resuming in
        :meth:`create_after_capacity_wait`, so the worker slot is free while KIE is full; it lasts at least
        :data:`~airflow_provider_runway.operators._capacity.MIN_DEFERRED_PAUSE`.
        """
        pause = self._try.capacity.next_pause(
            reason,
            log=self.log,
            timeout=self.timeout,
            poll_interval=self.poll_interval,
            try_started_at=self._try_started_at(context),
            execution_timeout=self.execution_timeout.total_seconds() if self.execution_timeout else None,
            retry_after=retry_after,
            least=MIN_DEFERRED_PAUSE if self.deferrable else 0.0,
        )
        if not self.deferrable:
            time.sleep(pause)
            return
        self.defer(
            trigger=pause_trigger(pause),
            method_name="create_after_capacity_wait",
            kwargs=self._try.resume_kwargs(getattr(context["ti"], "try_number", None)),
            timeout=None,  # the pause never passes the deadline (CapacityWait.next_pause)
        )

    def submit_job(self, context: Context) -> str:
        """Create the Runway task; errors that retrying cannot fix fail the task without retries.

        While KIE cannot take the task (it refuses the create with "Reached the limit for concurrent
        generations", or with 429s the HTTP retries could not ride out), the create is repeated with
        back-off until KIE accepts it or the try's deadline passes: nothing was created or charged,
        so this cannot pay twice. A deferrable operator pauses in the triggerer (see ``_pause_for_capacity``).
        """
        request = self._try.request or self.build_request(self.hook.get_validation_limits())
        # Uploaded once per try: a create repeated while KIE has no capacity reuses the URLs.
        request = self._try.request = self._upload_inputs(context, request)
        while True:
            try:
                task_id = self.hook.create_task(request)
            except RunwayError as err:
                if waits_for_capacity(err):
                    self._pause_for_capacity(context, str(err), getattr(err, "retry_after", None))
                    continue
                if isinstance(err, _RETRYABLE_CREATE_ERRORS):
                    raise
                raise AirflowFailException(self._create_failure_message(err)) from err
            except ValueError as err:
                raise AirflowFailException(self._create_failure_message(err)) from err
            break
        self._try.capacity.accepted(self.log)
        self.log.info("Created Runway %s task %s", self.family.value, task_id)
        self._try.created(task_id, self.family)
        return task_id

    def _upload_inputs(self, context: Context, request: CreateRequest) -> CreateRequest:
        """``request`` with each file input uploaded to KIE and replaced by its ``downloadUrl``."""
        if not self._try.uploads:
            return request
        urls: dict[str, str] = {}
        for name, source in self._try.uploads.items():
            try:
                urls[name] = self.hook.upload_file(source, field=name)
            except RunwayError as err:
                if err.retryable:  # nothing was created, and the hash-named upload overwrites itself on a retry
                    raise
                raise AirflowFailException(
                    f"{self.task_id}: uploading {name} failed: {err}; no Runway task was created"
                ) from err
        context["ti"].xcom_push(key=RUNWAY_UPLOADED_INPUTS_XCOM_KEY, value=urls)
        self._try.uploads, self._try.uploaded = {}, urls
        return dataclasses.replace(request, **urls)  # type: ignore[arg-type]

    def _create_failure_message(self, err: Exception) -> str:
        if isinstance(err, RunwayCreateUncertainError):
            return f"{err}. The task is not retried, to avoid paying twice; check KIE before clearing it."
        return f"Runway refused to create the task: {err}"

    def get_job_status(self, external_id: Any, context: Context) -> str:
        task = self._read_task(str(external_id))
        self._try.task = task
        return task.status.value

    def is_job_active(self, status: str) -> bool:
        return status in (TaskStatus.PENDING.value, TaskStatus.RUNNING.value)

    def is_job_succeeded(self, status: str) -> bool:
        return status == TaskStatus.SUCCEEDED.value

    def poll_until_complete(self, external_id: Any, context: Context) -> None:
        """Wait for the task: here, or deferred to the triggerer. Raises when it did not succeed."""
        task_id = str(external_id)
        self._announce(context, task_id)
        if not self.wait_for_completion:
            return
        if self.deferrable:
            self._check_not_failed_at_once(context, task_id)
            self._defer_wait(context, task_id)
        while True:
            decision = self.hook.wait_for_task(
                task_id,
                self.family,
                poll_interval=self.poll_interval,
                deadline=time.time() + self.timeout,
                deadline_source=f"timeout of {self.timeout:g} s",
            )
            if decision.task is None or not waits_for_capacity(decision.task):
                break
            task_id = self._create_again(context, decision.task)
        self._raise_unless_done(context, decision)
        self._try.task = decision.task

    def get_job_result(self, external_id: Any, context: Context) -> dict[str, Any]:
        """The return value for the task: the result of a finished one, or its id and state when not waiting."""
        task_id = self._try.current(str(external_id))
        self._announce(context, task_id)
        known = self._try.task
        task = known if known is not None and known.task_id == task_id else self._read_task(task_id)
        if not self.wait_for_completion and not task.is_terminal:
            return {"task_id": task_id, "family": self.family.value, "state": task.status.value}
        now = time.time()
        decision = WaitPolicy(task_id, poll_interval=self.poll_interval).decide(task, WaitState(started_at=now), now)
        return self._conclude(context, decision)

    def _create_again(self, context: Context, task: RunwayTask) -> str:
        """Replace ``task``, which KIE failed for the concurrency limit before charging, after a pause in place."""
        self._pause_for_capacity(context, f"Runway task {task.task_id} failed: {task.fail_message}")
        task_id = self.submit_job(context)
        self._try.replaced[task.task_id] = task_id
        if self.durable:
            remember(context, self.external_id_key, task_id)
        self._announce(context, task_id)
        return task_id

    def _check_not_failed_at_once(self, context: Context, task_id: str) -> None:
        """Before deferring, read a task this try created once: KIE fails one over the concurrency limit at once.

        Such a task pauses for capacity (a deferral to a time trigger) instead of a deferral whose trigger
        fires at once (which Airflow 3.3 may fail: apache/airflow#67287). A failed read defers as usual.
        """
        if self._try.created_at is None:
            return
        try:
            task = self.hook.get_task(task_id, self.family)
        except RunwayError:
            return
        self._try.last_read_at = time.time()
        if waits_for_capacity(task):
            self._pause_for_capacity(context, f"Runway task {task.task_id} failed: {task.fail_message}")

    def _read_task(self, task_id: str) -> RunwayTask:
        try:
            return self.hook.get_task(task_id, self.family)
        except RunwayError as err:
            raise RunwayWaitError(f"Could not read Runway task {task_id}: {err}") from err

    # -- the deferred wait ------------------------------------------------------------------------------

    def _defer_wait(self, context: Context, task_id: str) -> None:
        """Defer the wait for ``task_id`` to the triggerer; ``execute_complete`` resumes it (or the trigger ends it).

        The trigger's deadline is the earlier of ``timeout`` and ``execution_timeout``.
        """
        limit = self.execution_timeout.total_seconds() if self.execution_timeout is not None else None
        end_time, source = deadline_for(
            time.time(),
            self.timeout,
            started_at=self._try_started_at(context),
            execution_timeout=limit,
            # Airflow 2 resumes the task with what is left of execution_timeout and fails it at once
            # when nothing is: the trigger ends a little earlier so execute_complete can say why.
            reserve=0.0 if AIRFLOW_V_3_0_PLUS or limit is None else min(EXECUTION_TIMEOUT_RESERVE, limit / 10),
        )
        self.defer(
            trigger=RunwayTaskTrigger(
                task_id=task_id,
                family=self.family.value,
                runway_conn_id=self.runway_conn_id,
                poll_interval=self.poll_interval,
                end_time=end_time,
                retry_limit=self.runway_retry_limit,
                retry_delay=self.runway_retry_delay,
                deadline_source=source,
                first_poll_delay=self.first_poll_delay,
                expected_duration=self.expected_duration,
                duration=getattr(self._try.request, "duration", None),
                quality=getattr(self._try.request, "quality", None),
                task_end=self._task_end(context),
                wait_state=self._try.wait_state(),
            ),
            method_name="execute_complete",
            kwargs=self._try.resume_kwargs(getattr(context["ti"], "try_number", None)),
            # The trigger enforces the deadline, execution_timeout included: Airflow's own timeout
            # would end the task without calling execute_complete, so the message would not name
            # the Runway task.
            timeout=None,
        )

    def _task_end(self, context: Context) -> dict[str, Any] | None:
        """What the trigger needs to end the task itself (one plain-JSON value), or None to resume on a worker.

        Only when nothing is left for a worker once the wait succeeded (see ``end_in_triggerer``); logs why not.
        """
        if not self.end_in_triggerer or not task_end_supported():
            return None
        reasons = (["download_to"] if self.download_to else []) + worker_end_reasons(self)
        if reasons:
            self.log.info("On success this task resumes on a worker, for: %s", ", ".join(reasons))
            return None
        self.log.info("On success this task ends in the triggerer (nothing is left for a worker)")
        durable_variable = self.durable and not AIRFLOW_V_3_3_PLUS  # the Variable record below Airflow 3.3
        return {
            "multiple_outputs": self.multiple_outputs,
            "do_xcom_push": self.do_xcom_push,
            "resume_record": record_key(context, self.external_id_key) if durable_variable else None,
        }

    def _complete(self, context: Context, event: Mapping[str, Any]) -> dict[str, Any]:
        self.runway_task_id = str(event.get("task_id") or self.runway_task_id or "")
        decision = WaitDecision.from_event(event, self.runway_task_id)
        if decision.task is not None and waits_for_capacity(decision.task):
            self._pause_for_capacity(
                context, f"Runway task {decision.task.task_id} failed: {decision.task.fail_message}"
            )
        return self._conclude(context, decision)

    # -- the end of a try ---------------------------------------------------------------------------------

    def _conclude(self, context: Context, decision: WaitDecision) -> dict[str, Any]:
        """The return value of a finished wait, or the failure it ended with."""
        self._raise_unless_done(context, decision)
        assert decision.task is not None  # a DONE decision carries its task
        return self._finish(context, decision.task)

    def _raise_unless_done(self, context: Context, decision: WaitDecision) -> None:
        """Nothing when the task succeeded; else the failure the wait ended with."""
        if decision.outcome is Outcome.DONE and decision.task is not None:
            return
        if decision.outcome is Outcome.POLL:  # not finished: no caller concludes such a wait
            raise RunwayWaitError(f"Runway task {self.runway_task_id} has not finished")
        if decision.outcome is Outcome.TIMED_OUT:
            raise RunwayTaskTimeoutError(f"{decision.message} A retry attaches to it.")
        if decision.remote:
            if decision.task is not None:
                self._try.outcome = report_remote_failure(self, context, decision.task)
            if decision.task is not None and decision.task.failed_for_bad_input:
                # KIE refused the input itself: a retry would pay for the same refusal again.
                raise AirflowFailException(f"{decision.message}; not retried (the input was refused)")
            raise self._remote_failure(decision.message)
        if decision.retryable:
            raise RunwayWaitError(decision.message)
        raise AirflowFailException(decision.message)

    def _finish(self, context: Context, task: RunwayTask) -> dict[str, Any]:
        """The return value of a task that succeeded: the result keys, and the downloaded files."""
        result = task_result(task, requested_quality=getattr(self, "quality", None))
        if task.video_url:
            context["ti"].xcom_push(key=RUNWAY_RESULT_URL_XCOM_KEY, value=task.video_url)
        if self.download_to:
            result.update(self._download(result, self.download_to))
        self._try.outcome = report_success(self, context, task, result)
        self.log.info("Runway task %s succeeded: %s", task.task_id, redact_url(task.video_url or ""))
        return result

    def _remote_failure(self, message: str) -> Exception:
        if self.retry_remote_failures:
            return RunwayWaitError(f"{message}; a retry creates a new task")
        return AirflowFailException(f"{message}; not retried (a new task costs credits again)")

    def _download(self, result: dict[str, Any], destination: str | ObjectStoragePath) -> dict[str, Any]:
        # Imported here: storage pulls in fsspec-backed ObjectStoragePath, needed only with download_to.
        from airflow_provider_runway.operators.download import persist_or_fail

        return persist_or_fail(result, destination, hook=self.hook)

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """Lineage for the OpenLineage provider: input files, the stored video or its URL, the Runway facet."""
        return openlineage_facets(self, self._try.outcome)

    def get_openlineage_facets_on_failure(self, task_instance: Any) -> Any:
        """Lineage of a failed try: its inputs, and the Runway facet when a task was created."""
        return openlineage_facets(self, self._try.outcome)

    def on_kill(self) -> None:
        if self.runway_task_id:
            self.log.warning(
                "KIE has no cancel endpoint: Runway task %s keeps running (and costs credits); "
                "a retry of this task instance attaches to it",
                self.runway_task_id,
            )


class RunwayGenerateOperator(RunwayBaseOperator):
    """
    Generate a video with Runway Gen-3 on KIE.ai: text-to-video, or image-to-video with ``image_url``.

    .. seealso::
        https://docs.kie.ai/runway-api/generate-ai-video

    :param prompt: What the video shows (templated).
    :param image_url: Image to animate; turns the request into image-to-video (templated). An http(s)
        URL, or a local path, ``ObjectStoragePath`` or ``file://``, ``s3://``, ``gs://`` URL, uploaded to
        KIE's file host first (see :meth:`RunwayHook.upload_file`).
    :param duration: Seconds of video, 5 or 10 (8 on newer API versions); 10 cannot be 1080p.
    :param quality: ``"720p"`` or ``"1080p"``.
    :param aspect_ratio: ``"16:9"``, ``"4:3"``, ``"1:1"``, ``"3:4"`` or ``"9:16"``; required without image.
    :param water_mark: Watermark text, ``""`` for none.
    :param callback_url: URL KIE calls when the task ends (templated).
    :param seed: Optional seed, passed through only when set.
    """

    request_class = GenerateRequest
    request_fields = (
        "prompt",
        "image_url",
        "duration",
        "quality",
        "aspect_ratio",
        "water_mark",
        "callback_url",
        "seed",
    )
    template_fields: Sequence[str] = (*request_fields, "runway_conn_id", "download_to")

    def __init__(
        self,
        *,
        prompt: str | XComArg,
        image_url: str | ObjectStoragePath | XComArg | None = None,
        duration: int = 5,
        quality: str = "720p",
        aspect_ratio: str | None = "16:9",
        water_mark: str = "",
        callback_url: str | XComArg | None = None,
        seed: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.prompt = prompt
        self.image_url = image_url
        self.duration = duration
        self.quality = quality
        self.aspect_ratio = aspect_ratio
        self.water_mark = water_mark
        self.callback_url = callback_url
        self.seed = seed
        self.validate_static()


class RunwayExtendOperator(RunwayBaseOperator):
    """
    Continue a finished Runway video with a new prompt; the extension keeps the source aspect ratio.

    :param source_task_id: Runway task id of the video to extend (templated), e.g. the XComArg
        ``generate.output["task_id"]`` of an upstream :class:`RunwayGenerateOperator`.
    :param prompt: What happens next (templated).
    :param quality: ``"720p"`` or ``"1080p"``.
    :param water_mark: Watermark text, ``""`` for none.
    :param callback_url: URL KIE calls when the task ends (templated).
    :param source_quality: Quality of the source video when known (templated), e.g. the XComArg
        ``generate.output["quality"]``. KIE cannot extend a 1080p video: such a source fails the task
        before anything is created. Unknown (``None``), KIE's own refusal fails the task.
    :param image_url: Optional image that guides the extension (templated), in the forms
        :class:`RunwayGenerateOperator` takes; sent as ``imageUrl`` only when given.
    :param expand_prompt: Let KIE expand the prompt (``True``/``False``); sent as ``expandPrompt`` only
        when given.
    """

    request_class = ExtendRequest
    request_fields = (
        "source_task_id",
        "prompt",
        "quality",
        "water_mark",
        "callback_url",
        "source_quality",
        "image_url",
        "expand_prompt",
    )
    template_fields: Sequence[str] = (*request_fields, "runway_conn_id", "download_to")

    def __init__(
        self,
        *,
        source_task_id: str | XComArg,
        prompt: str | XComArg,
        quality: str = "720p",
        water_mark: str = "",
        callback_url: str | XComArg | None = None,
        source_quality: str | XComArg | None = None,
        image_url: str | ObjectStoragePath | XComArg | None = None,
        expand_prompt: bool | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.source_task_id = source_task_id
        self.prompt = prompt
        self.quality = quality
        self.water_mark = water_mark
        self.callback_url = callback_url
        self.source_quality = source_quality
        self.image_url = image_url
        self.expand_prompt = expand_prompt
        self.validate_static()


class RunwayAlephOperator(RunwayBaseOperator):
    """
    Edit a video with Runway Aleph (video-to-video) on KIE.ai; the first 5 seconds are processed.

    :param prompt: The edit to make (templated).
    :param video_url: Input video of at most 10 MB (templated): an http(s) URL, or a local path,
        ``ObjectStoragePath`` or ``file://``, ``s3://``, ``gs://`` URL, uploaded to KIE's file host first.
    :param aspect_ratio: Output aspect ratio (adds ``"21:9"`` to the Runway ones); default: the input's.
    :param seed: Optional seed.
    :param reference_image: Optional reference image (templated), in the forms ``video_url`` takes.
    :param water_mark: Watermark text, ``""`` for none.
    :param upload_cn: Upload through KIE's China region.
    :param callback_url: URL KIE calls when the task ends (templated).
    """

    family = TaskFamily.ALEPH
    default_timeout = timedelta(minutes=60)
    request_class = AlephRequest
    request_fields = (
        "prompt",
        "video_url",
        "aspect_ratio",
        "seed",
        "reference_image",
        "water_mark",
        "upload_cn",
        "callback_url",
    )
    template_fields: Sequence[str] = (*request_fields, "runway_conn_id", "download_to")

    def __init__(
        self,
        *,
        prompt: str | XComArg,
        video_url: str | ObjectStoragePath | XComArg,
        aspect_ratio: str | None = None,
        seed: int | None = None,
        reference_image: str | ObjectStoragePath | XComArg | None = None,
        water_mark: str = "",
        upload_cn: bool = False,
        callback_url: str | XComArg | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.prompt = prompt
        self.video_url = video_url
        self.aspect_ratio = aspect_ratio
        self.seed = seed
        self.reference_image = reference_image
        self.water_mark = water_mark
        self.upload_cn = upload_cn
        self.callback_url = callback_url
        self.validate_static()
