"""The review console (CONTRACT §9): Trust & Safety agents work the queue of suspensions,
bans and appeals within their SLAs. Cases come from the view the workers keep; a claim
is a lapsing Redis key; a decision is a `ReviewDecision` published to the input topic
(the workers apply it); every claim, release, reassignment and decision is published to
`trust-safety.review-audit` and listed on the pages."""

from __future__ import annotations

import contextlib
import hashlib
import logging
import time
from typing import Any

from aiohttp import web

from rules.history import review_kind
from rules.metrics import wilson_lower_bound
from rules.policy import Policy
from streams.contract import topics as T
from streams.contract.auth import AuthError, Identity, require_reviewer
from streams.view_reader import Unavailable
from web.commands import CommandPublisher
from web.pages import SellerPages, api_error, json_body
from web.review_store import Claim, ReviewStore
from web.signin import CSRF_FIELD, check_csrf

log = logging.getLogger("warden.web")
MAX_NOTE_CHARS = 2_000
DECISIONS = ("APPROVE", "REJECT")


def now_ms() -> int:
    return int(time.time() * 1000)


def decision_event_id(action_id: str, status: str, reviewer: str) -> str:
    """One decision per (action, status it decides, reviewer): a double submit or a retry
    is the same event, which the workers apply once."""
    return "rvw_" + hashlib.sha256(f"{action_id}\x1f{status}\x1f{reviewer}".encode()).hexdigest()[:24]


def duration(ms: int) -> str:
    """A short human duration: 3d 4h, 5h 12m, 7m."""
    ms = abs(ms)
    days, rest = divmod(ms // 60_000, 24 * 60)
    hours, minutes = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    return f"{minutes}m"


class Case(dict):  # type: ignore[type-arg]
    """An action waiting for review, with its SLA clock and its holder (a dict for the templates)."""


def case_of(doc: dict[str, Any], policy: Policy, now: int, claim: Claim | None) -> Case:
    kind = review_kind(doc) or ""
    since = int(doc["decided_at"])
    deadline = since + int(policy.review.sla_hours.get(kind, 24) * 3_600_000)
    return Case(doc, kind=kind, since=since, deadline=deadline, age=duration(now - since),
                left=duration(deadline - now), overdue=deadline < now, holder=claim.by if claim else None,
                claim_until=claim.until if claim else None)


class ReviewPages:
    """Handlers of the review console and its JSON twins."""

    def __init__(self, pages: SellerPages, store: ReviewStore, publisher: CommandPublisher) -> None:
        self.pages = pages
        self.store = store
        self.publisher = publisher
        self.policy: Policy = pages.policy

    # --- who ------------------------------------------------------------------------------

    def reviewer(self, request: web.Request, api: bool) -> Identity:
        identity = self.pages.api_identity(request) if api else self.pages.page_identity(request)
        try:
            require_reviewer(identity)
        except AuthError as exc:
            if api:
                raise api_error(403, str(exc)) from None
            raise self.pages.error_page(request, 403, "Reviewers only", str(exc), identity) from None
        return identity

    async def form(self, request: web.Request, identity: Identity) -> Any:
        form = await request.post()
        try:
            check_csrf(request, self.pages.secret, str(form.get(CSRF_FIELD, "")))
        except AuthError as exc:
            raise self.pages.error_page(request, 403, "The form has expired", str(exc), identity) from None
        return form

    # --- reading --------------------------------------------------------------------------

    async def cases(self) -> list[Case]:
        """Every pending case, the most urgent (earliest SLA deadline) first."""
        docs = [d for d in await self.store.queue() if review_kind(d) is not None]
        claims = await self.store.claims([d["action_id"] for d in docs])
        now = now_ms()
        cases = [case_of(d, self.policy, now, claims.get(d["action_id"])) for d in docs]
        cases.sort(key=lambda c: (c["deadline"], c["since"], c["action_id"]))
        return cases

    @staticmethod
    def backlog(cases: list[Case], now: int) -> list[dict[str, Any]]:
        out = []
        for kind in ("SUSPENSION", "BAN", "APPEAL"):
            mine = [c for c in cases if c["kind"] == kind]
            oldest = min((c["since"] for c in mine), default=None)
            out.append({"kind": kind, "count": len(mine), "overdue": sum(c["overdue"] for c in mine),
                        "oldest": duration(now - oldest) if oldest is not None else "—"})
        return out

    @staticmethod
    def filtered(cases: list[Case], query: Any, identity: Identity) -> list[Case]:
        kind, metric = query.get("kind", ""), query.get("metric", "")
        return [c for c in cases
                if (not kind or c["kind"] == kind) and (not metric or c["metric"] == metric)
                and (not query.get("mine") or c["holder"] == identity.sub)
                and (not query.get("overdue") or c["overdue"])]

    async def queue_page(self, request: web.Request) -> web.Response:
        identity = self.reviewer(request, api=False)
        cases = await self.cases()
        shown = self.filtered(cases, request.query, identity)
        return self.pages.html("review_queue.html", request, identity, cases=shown, total=len(cases),
                               backlog=self.backlog(cases, now_ms()), query=request.query,
                               metrics=sorted({c["metric"] for c in cases}), notice=request.query.get("notice"))

    async def api_queue(self, request: web.Request) -> web.Response:
        identity = self.reviewer(request, api=True)
        cases = self.filtered(await self.cases(), request.query, identity)
        return web.json_response({"cases": [dict(c) for c in cases]})

    async def load_case(self, request: web.Request, identity: Identity, api: bool) -> dict[str, Any]:
        action_id = request.match_info["action_id"]
        doc = await self.store.action(action_id)
        if doc is None:
            if api:
                raise api_error(404, f"no action {action_id!r}")
            raise self.pages.error_page(request, 404, "No such case", f"Warden has no action {action_id!r}.",
                                        identity)
        claims = await self.store.claims([action_id])
        return {"doc": doc, "case": case_of(doc, self.policy, now_ms(), claims.get(action_id)),
                "pending": review_kind(doc) is not None}

    async def case_page(self, request: web.Request) -> web.Response:
        identity = self.reviewer(request, api=False)
        loaded = await self.load_case(request, identity, api=False)
        return self.pages.html("review_case.html", request, identity, **await self.case_context(loaded),
                               notice=request.query.get("notice"), error=None, note="")

    async def case_context(self, loaded: dict[str, Any]) -> dict[str, Any]:
        doc = loaded["doc"]
        extras = await self.store.case_extras(doc)
        mp = self.policy.metrics.get(doc["metric"])
        confidence = (mp.min_confidence if mp and mp.min_confidence else 0.95)
        facts = extras["orders"]
        orders = [{"order_id": oid, **facts.get(oid, {})} for oid in doc["evidence_order_ids"]]
        buyers = {f.get("buyer_id") for f in facts.values() if f.get("buyer_id")}
        timeline = self.dedup(extras["timeline"])
        deciders = await self.store.deciders([r["caused_by"] for r in timeline])
        view = await self.pages.reader.seller(doc["seller_id"], with_daily=True)
        trend = self.pages.metric_context(view, doc["metric"]) if view is not None and mp else None
        sent = extras["sent"]
        applied = [{"status": status, **s, "applied": doc["status"] != status} for status, s in sent.items()]
        return {**loaded, "orders": orders, "held_orders": len(facts), "buyers": len(buyers),
                "wilson": wilson_lower_bound(doc["numerator"], doc["denominator"], confidence),
                "confidence": confidence, "timeline": timeline, "deciders": deciders,
                "appeals": extras["appeals"], "sent": applied, "audit": extras["audit"], "trend": trend,
                "seller_view": view}

    @staticmethod
    def dedup(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Every status change once (a record published again after a rebalance is one change)."""
        seen, out = set(), []
        for r in records:
            key = (r["action_id"], r["status"], r["decided_at"])
            if key not in seen:
                seen.add(key)
                out.append(r)
        out.sort(key=lambda r: (r["decided_at"], r["action_id"]))
        return out

    async def api_case(self, request: web.Request) -> web.Response:
        identity = self.reviewer(request, api=True)
        context = await self.case_context(await self.load_case(request, identity, api=True))
        body = {k: context[k] for k in ("doc", "case", "pending", "orders", "buyers", "wilson", "confidence",
                                        "timeline", "appeals", "sent", "audit")}
        return web.json_response(body)

    # --- claims ---------------------------------------------------------------------------

    async def take(self, identity: Identity, doc: dict[str, Any], force_for: str | None = None) -> Claim:
        """Claim (or, for a lead, reassign) a case, and write the step to the audit log."""
        ttl = int(self.policy.review.claim_minutes * 60_000)
        who = force_for or identity.sub
        before = (await self.store.claims([doc["action_id"]])).get(doc["action_id"])
        claim = await self.store.claim(doc["action_id"], who, now_ms(), ttl, force=force_for is not None)
        if claim.by != who:
            return claim
        if force_for is not None:
            await self.audit(identity, doc, "REASSIGN", f"to {who}" + (f" (was {before.by})" if before else ""))
        elif before is None or before.by != who:
            await self.audit(identity, doc, "CLAIM", None)
        return claim

    async def audit(self, identity: Identity, doc: dict[str, Any], step: str, detail: str | None) -> None:
        at = now_ms()
        entry = {"event_id": "aud_" + hashlib.sha256(
                     f"{doc['action_id']}\x1f{step}\x1f{identity.sub}\x1f{at}".encode()).hexdigest()[:24],
                 "action_id": doc["action_id"], "seller_id": doc["seller_id"], "actor": identity.sub,
                 "actor_role": identity.role, "step": step, "detail": detail, "at": at}
        try:
            await self.publisher.publish(T.REVIEW_AUDIT, "ReviewAudit", entry)
        except Unavailable:
            log.error("audit entry %s not published: the broker did not take it", entry["event_id"])
            raise
        finally:
            await self.store.remember_audit(entry)

    async def claim_form(self, request: web.Request) -> web.Response:
        identity = self.reviewer(request, api=False)
        await self.form(request, identity)
        loaded = await self.load_case(request, identity, api=False)
        return await self.after_claim(request, identity, loaded)

    async def after_claim(self, request: web.Request, identity: Identity, loaded: dict[str, Any]) -> web.Response:
        doc = loaded["doc"]
        if not loaded["pending"]:
            return await self.case_error(request, identity, loaded, 409, f"This case is no longer pending: the "
                                         f"action is {doc['status']}.")
        claim = await self.take(identity, doc)
        if claim.by != identity.sub:
            return await self.case_error(request, identity, loaded, 409,
                                         f"{claim.by} holds this case until {_clock(claim.until)}.")
        raise web.HTTPSeeOther(f"/review/{doc['action_id']}?notice=claimed")

    async def release_form(self, request: web.Request) -> web.Response:
        identity = self.reviewer(request, api=False)
        await self.form(request, identity)
        loaded = await self.load_case(request, identity, api=False)
        if await self.store.release(loaded["doc"]["action_id"], identity.sub):
            await self.audit(identity, loaded["doc"], "RELEASE", None)
        raise web.HTTPSeeOther(f"/review/{loaded['doc']['action_id']}?notice=released")

    async def reassign_form(self, request: web.Request) -> web.Response:
        identity = self.reviewer(request, api=False)
        form = await self.form(request, identity)
        if not identity.reassigns:
            raise self.pages.error_page(request, 403, "Leads only",
                                        f"{identity.sub} ({identity.role}) may not reassign cases.", identity)
        loaded = await self.load_case(request, identity, api=False)
        to = str(form.get("to", "")).strip()
        if not to:
            return await self.case_error(request, identity, loaded, 400, "Say whom to give the case to.")
        await self.take(identity, loaded["doc"], force_for=to)
        raise web.HTTPSeeOther(f"/review/{loaded['doc']['action_id']}?notice=reassigned")

    async def next_form(self, request: web.Request) -> web.Response:
        identity = self.reviewer(request, api=False)
        await self.form(request, identity)
        for case in await self.cases():
            if case["holder"] in (None, identity.sub):
                claim = await self.take(identity, dict(case))
                if claim.by == identity.sub:
                    raise web.HTTPSeeOther(f"/review/{case['action_id']}?notice=claimed")
        raise web.HTTPSeeOther("/review?notice=empty")

    # --- deciding -------------------------------------------------------------------------

    async def decide(self, identity: Identity, loaded: dict[str, Any], decision: str, note: str) -> tuple[int, str]:
        """Send a decision; (status, message): 200 sent or already sent, 4xx why not."""
        doc = loaded["doc"]
        if decision not in DECISIONS:
            return 400, "decision: choose APPROVE or REJECT"
        if not note.strip():
            return 400, "note: say why (the note is required and kept with the decision)"
        if len(note) > MAX_NOTE_CHARS:
            return 400, f"note: {len(note):,} characters; the limit is {MAX_NOTE_CHARS:,}"
        if not loaded["pending"]:
            return 409, f"This case is no longer pending: the action is {doc['status']} (decided meanwhile)."
        holder = loaded["case"]["holder"]
        if holder is not None and holder != identity.sub:
            return 409, f"{holder} holds this case: it is theirs to decide while the claim lasts."
        event_id = decision_event_id(doc["action_id"], doc["status"], identity.sub)
        sent = {"event_id": event_id, "by": identity.sub, "decision": decision, "note": note, "at": now_ms()}
        earlier = await self.store.mark_sent(doc["action_id"], doc["status"], sent)
        if earlier is not None:
            if earlier["by"] == identity.sub and earlier["decision"] == decision:
                return 200, "already sent"  # a double submit: nothing new published
            return 409, f"{earlier['by']} already sent {earlier['decision']} for this case."
        record = {"event_id": event_id, "action_id": doc["action_id"], "seller_id": doc["seller_id"],
                  "reviewer_id": identity.sub, "decision": decision, "note": note, "decided_at": sent["at"]}
        try:
            await self.publisher.publish("trust-safety.review-decisions", "ReviewDecision", record)
        except Unavailable:
            await self.store.unmark_sent(doc["action_id"], doc["status"])
            raise
        await self.store.drop_claim(doc["action_id"])
        # the decision is on the broker: an audit entry the broker did not take is logged and listed
        with contextlib.suppress(Unavailable):
            await self.audit(identity, doc, "DECIDE", f"{decision} ({event_id}): {note}")
        return 200, "sent"

    async def decision_form(self, request: web.Request) -> web.Response:
        identity = self.reviewer(request, api=False)
        form = await self.form(request, identity)
        loaded = await self.load_case(request, identity, api=False)
        decision, note = str(form.get("decision", "")), str(form.get("note", ""))
        status, message = await self.decide(identity, loaded, decision, note)
        if status != 200:
            return await self.case_error(request, identity, loaded, status, message, note)
        raise web.HTTPSeeOther(f"/review/{loaded['doc']['action_id']}?notice={message.replace(' ', '-')}")

    async def case_error(self, request: web.Request, identity: Identity, loaded: dict[str, Any], status: int,
                         message: str, note: str = "") -> web.Response:
        return self.pages.html("review_case.html", request, identity, status=status,
                               **await self.case_context(loaded), notice=None, error=message, note=note)

    # --- the API's changes ----------------------------------------------------------------

    async def api_claim(self, request: web.Request) -> web.Response:
        identity = self.reviewer(request, api=True)
        loaded = await self.load_case(request, identity, api=True)
        if not loaded["pending"]:
            raise api_error(409, f"the action is {loaded['doc']['status']}: nothing to review")
        claim = await self.take(identity, loaded["doc"])
        if claim.by != identity.sub:
            raise api_error(409, f"{claim.by} holds this case until {_clock(claim.until)}")
        return web.json_response({"action_id": loaded["doc"]["action_id"], "holder": claim.by, "until": claim.until})

    async def api_release(self, request: web.Request) -> web.Response:
        identity = self.reviewer(request, api=True)
        loaded = await self.load_case(request, identity, api=True)
        released = await self.store.release(loaded["doc"]["action_id"], identity.sub)
        if released:
            await self.audit(identity, loaded["doc"], "RELEASE", None)
        return web.json_response({"action_id": loaded["doc"]["action_id"], "released": released})

    async def api_reassign(self, request: web.Request) -> web.Response:
        identity = self.reviewer(request, api=True)
        if not identity.reassigns:
            raise api_error(403, f"{identity.sub} ({identity.role}) may not reassign cases")
        body = await json_body(request)
        to = body.get("to")
        if not isinstance(to, str) or not to.strip():
            raise api_error(400, "to: required, who takes the case")
        loaded = await self.load_case(request, identity, api=True)
        claim = await self.take(identity, loaded["doc"], force_for=to.strip())
        return web.json_response({"action_id": loaded["doc"]["action_id"], "holder": claim.by, "until": claim.until})

    async def api_decision(self, request: web.Request) -> web.Response:
        identity = self.reviewer(request, api=True)
        body = await json_body(request)
        decision, note = body.get("decision"), body.get("note", "")
        if not isinstance(decision, str):
            raise api_error(400, "decision: required, APPROVE or REJECT")
        if not isinstance(note, str):
            raise api_error(400, "note: must be a string")
        loaded = await self.load_case(request, identity, api=True)
        status, message = await self.decide(identity, loaded, decision, note)
        if status != 200:
            raise api_error(status, message)
        event_id = decision_event_id(loaded["doc"]["action_id"], loaded["doc"]["status"], identity.sub)
        return web.json_response({"action_id": loaded["doc"]["action_id"], "event_id": event_id,
                                  "result": message}, status=202)

    # --- the leads' audit page --------------------------------------------------------------

    async def audit_page(self, request: web.Request) -> web.Response:
        identity = self.reviewer(request, api=False)
        if not identity.reassigns:
            raise self.pages.error_page(request, 403, "Leads only",
                                        f"{identity.sub} ({identity.role}) may not read the audit log.", identity)
        return self.pages.html("review_audit.html", request, identity, entries=await self.store.audit())

    def routes(self, app: web.Application) -> None:
        r = app.router
        r.add_get("/review", self.queue_page)
        r.add_get("/review/audit", self.audit_page)
        r.add_post("/review/next", self.next_form)
        r.add_get("/review/{action_id}", self.case_page)
        r.add_post("/review/{action_id}/claim", self.claim_form)
        r.add_post("/review/{action_id}/release", self.release_form)
        r.add_post("/review/{action_id}/reassign", self.reassign_form)
        r.add_post("/review/{action_id}/decision", self.decision_form)
        r.add_get("/api/review/queue", self.api_queue)
        r.add_get("/api/review/{action_id}", self.api_case)
        r.add_post("/api/review/{action_id}/claim", self.api_claim)
        r.add_post("/api/review/{action_id}/release", self.api_release)
        r.add_post("/api/review/{action_id}/reassign", self.api_reassign)
        r.add_post("/api/review/{action_id}/decision", self.api_decision)


def _clock(ms: int) -> str:
    return time.strftime("%H:%M:%S UTC", time.gmtime(ms / 1000))
