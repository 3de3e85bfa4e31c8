"""poster_repair: give the app's items a working poster URL with the media server's current image tag.

Scans the app's movies and series (the profile's `poster_rows`), reads every item's current
``ImageTags.Primary`` from the media server (paged ``GET /Items``, at most the jellyfin profile's
`concurrency` pages at once, sent only to the configured server — never to a URL found in the database),
and rewrites a row's `poster_url` when it is missing (built from the profile's `poster_url` template on the
app's own media-server base, `poster_base`) or carries a stale tag (the tag replaced in place). Jellyfin
never checks `?tag=` (a stale tag still gets 200), so tags are compared rather than URLs fetched (DESIGN.md
§5 "jellyfin"). Items the server lists without a Primary image, or no longer lists, would answer 404: they
are counted as `unfixable` and left alone. Each write is conditional on the URL the scan read, so an app
sync that ran meanwhile wins.
"""

from __future__ import annotations

import re
from typing import Any

from agent.actions.appwrite import open_writer
from agent.actions.base import Action, ActionFailed, Context, ResultModel, thousands
from agent.actions.targets import Target, app_targets, entry_of
from agent.appdb import describe_db_error, media_server, open_app_db, query_params
from agent.config import Config
from agent.probes.posters import current_tags, norm_id
from agent.profiles import load_profile

TAG = re.compile(r"([?&]tag=)([^&#]*)")
NEEDS = ("poster_rows", "poster_update", "poster_url")


class PosterResult(ResultModel):
    scanned: int
    updated: int
    errors: int
    unfixable: int  # rows whose item has no Primary image on the server, or is gone from it


def _actions(target: Target) -> dict[str, Any]:
    return load_profile(target.profile).actions


class PosterRepair(Action):
    name = "poster_repair"
    description = "Rewrite missing or stale poster URLs with the media server's current image tags."
    Result = PosterResult
    timeout = 1800.0
    auto_safe = True
    target_labels = ("app",)
    trips = (("PostersMissing", "app"),)

    def targets(self, config: Config) -> dict[str, Target]:
        return {n: t for n, t in app_targets(config).items()
                if entry_of(t) is not None and all(k in _actions(t) for k in NEEDS)
                and media_server(config, entry_of(t)) is not None}

    async def plan(self, ctx: Context) -> dict[str, Any]:
        entry, actions = entry_of(ctx.target), _actions(ctx.target)
        server = media_server(ctx.config, entry)
        ctx.progress.start("read the app's posters", None)
        async with open_app_db(entry) as db:
            rows = await db.rows(actions["poster_rows"], **query_params(entry, ctx.now()))
            based = await db.rows(actions["poster_base"]) if "poster_base" in actions else []
        base = (based[0].get("base") if based else None) or server.url
        ctx.progress.start("scan the media server", None)
        tags = await current_tags(ctx.http, server, load_profile("jellyfin").media_server, min(ctx.timeout, 60.0))
        fixes, unfixable = [], 0
        for r in rows:
            item, old = str(r["item_id"]), r.get("poster_url")
            current = tags.get(norm_id(item))
            if current is None:
                unfixable += 1
                continue
            if not old:
                new = actions["poster_url"].format(base=base.rstrip("/"), item_id=item, tag=current)
            else:
                m = TAG.search(old)
                if m is None or m.group(2) == current:
                    continue  # no tag to compare, or the current one
                new = old[:m.start(2)] + current + old[m.end(2):]
            fixes.append({"kind": r["kind"], "item_id": item, "old": old, "new": new})
        return {"media_server": server.name, "scanned": len(rows), "unfixable": unfixable,
                "statement": actions["poster_update"], "fixes": fixes}

    async def execute(self, ctx: Context, plan: dict[str, Any]) -> dict[str, Any]:
        statement = plan["statement"]
        ctx.progress.start("update", len(plan["fixes"]))
        updated = errors = 0
        first_error = ""
        async with open_writer(entry_of(ctx.target), ctx.timeout) as db:
            for fix in plan["fixes"]:
                try:
                    updated += await db.run(statement, kind=fix["kind"], item_id=fix["item_id"], url=fix["new"],
                                            old=fix["old"]) > 0
                except Exception as exc:  # one bad row must not stop the rest; counted and reported
                    errors += 1
                    first_error = first_error or describe_db_error(exc)
                ctx.progress.advance()
        result = {"scanned": plan["scanned"], "updated": updated, "errors": errors, "unfixable": plan["unfixable"]}
        if errors:
            raise ActionFailed(f"{errors} poster update(s) failed: {first_error}", result)
        return result

    def summary(self, target: str, result: dict[str, Any]) -> str:
        return (f"on {target}: {thousands(result['updated'])} poster(s) repaired of {thousands(result['scanned'])} "
                f"scanned, {result['unfixable']} without an image on the server, {result['errors']} error(s)")
