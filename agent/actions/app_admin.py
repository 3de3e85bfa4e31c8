"""The shared shape of the app-maintenance actions (invalidate_metadata_hashes, refresh_metadata,
invalidate_cover_cache): call the app's own admin endpoint when it has one, else do the equivalent.

The profile's `actions:` names the endpoint (an API call under the action's name, e.g. Tsundoku's
``POST /api/v1/series/invalidate-metadata-hashes``, sent with the `app.api` service's admin_token as a
bearer token) and the equivalent statement (``<action>_sql``) for an app reached only through its
database. The app's answer is passed through as the result, with ``via: api``.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import ConfigDict

from agent.actions.appwrite import open_writer
from agent.actions.base import Action, ActionFailed, Context, ResultModel
from agent.actions.targets import Target, app_targets, entry_of
from agent.appapi import call_json
from agent.config import Config
from agent.profiles import ApiCall, load_profile


class AppAnswer(ResultModel):
    """``via`` says how the work was done; for ``api`` the other keys are the app's own answer."""

    model_config = ConfigDict(extra="allow")
    via: Literal["api", "sql", "files"]


class AppAdminAction(Action):
    Result = AppAnswer
    timeout = 300.0
    target_labels = ("app",)

    def means(self, config: Config, target: Target) -> tuple[str, Any] | None:
        """("api", ApiCall) when the app's API is configured, else ("sql", statement); None: neither."""
        actions = load_profile(target.profile).actions if target.profile else {}
        call = actions.get(self.name)
        if isinstance(call, ApiCall) and target.service is not None:
            return "api", call
        statement = actions.get(f"{self.name}_sql")
        if isinstance(statement, str) and entry_of(target) is not None:
            return "sql", statement
        return None

    def targets(self, config: Config) -> dict[str, Target]:
        return {n: t for n, t in app_targets(config).items() if self.means(config, t) is not None}

    async def plan(self, ctx: Context) -> dict[str, Any]:
        via, how = self.means(ctx.config, ctx.target)
        if via == "api":
            return {"via": via, "service": ctx.target.service.name, "request": f"{how.method} {how.path}"}
        return {"via": via, "statement": how}

    async def execute(self, ctx: Context, plan: dict[str, Any]) -> dict[str, Any]:
        via, how = self.means(ctx.config, ctx.target)
        if via == "api":
            api = load_profile(ctx.target.profile).api
            answer = await call_json(ctx.http, ctx.target.service, how.method, how.path,
                                     auth=api.auth if api else "bearer", timeout=min(ctx.timeout, 60.0))
            result = {"via": "api", **(answer if isinstance(answer, dict) else {"answer": answer})}
            if result.get("triggered") is False:  # Tsundoku's busy lock: another refresh is in flight
                raise ActionFailed(f"{ctx.target.name} did not start it: another run is in flight", result)
            return result
        async with open_writer(entry_of(ctx.target), ctx.timeout) as db:
            return {"via": "sql", "rows": await db.run(how)}

    def summary(self, target: str, result: dict[str, Any]) -> str:
        facts = ", ".join(f"{k} {v}" for k, v in result.items() if k != "via")
        return f"on {target} (via {result.get('via')}): {facts}"
