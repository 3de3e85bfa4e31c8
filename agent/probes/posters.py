"""Posters probe: the app's items without a usable poster, per kind (DESIGN.md §6 "content").

`caretaker_posters_missing{app,kind}` = the profile's `missing` rows (items with no poster at all) plus,
when a media server is configured for the app (`app.media_server`, or the only jellyfin/emby service), the
items whose stored image tag no longer matches the server's current `ImageTags.Primary`, that the server
lists without a Primary image, or that it no longer lists. Tags are compared because Jellyfin never checks
the `?tag=` of an image URL: a stale tag still gets 200 (DESIGN.md §5 "jellyfin"). The items come from
paged `GET /Items?IncludeItemTypes=…&Recursive=true&Fields=ProviderIds&StartIndex=&Limit=` (the jellyfin
profile's `media_server` section) with at most `concurrency` pages in flight, sent only to the configured
server's URL. A stored URL without a tag is judged by presence only.
"""

from __future__ import annotations

import asyncio
import math
from collections import Counter

from agent.appapi import ApiError, call_json, media_auth
from agent.appdb import app_entries, describe_db_error, media_server, open_app_db, query_params
from agent.config import Config, DatabaseConfig, ServiceConfig, SQLiteConfig
from agent.probes.base import Probe, ProbeResult
from agent.profiles import MediaServerSection, Profile, load_profile
from agent.samples import Sample, sample

MAX_PAGES = 2000  # a bound on one scan (1 000 000 items at the default page size)


def norm_id(item_id: str) -> str:
    """Jellyfin accepts GUIDs with or without dashes, in any case."""
    return item_id.replace("-", "").lower()


async def current_tags(http, server: ServiceConfig, section: MediaServerSection,
                       timeout: float) -> dict[str, str | None]:
    """{normalised item id: current Primary tag, None without one} of every item of `section.item_types`.

    Raises ApiError (refused key, server error, timeout, an answer without Items)."""
    auth = media_auth(server, section.auth)

    async def page(start: int) -> dict:
        params = {"IncludeItemTypes": ",".join(section.item_types), "Recursive": "true", "Fields": "ProviderIds",
                  "StartIndex": start, "Limit": section.page_size}
        data = await call_json(http, server, "GET", section.items, auth=auth, params=params, timeout=timeout)
        if not isinstance(data, dict) or not isinstance(data.get("Items"), list):
            raise ApiError(f"{server.name}: {section.items} answered no Items list")
        return data

    first = await page(0)
    total = int(first.get("TotalRecordCount") or 0)
    pages = min(math.ceil(total / section.page_size), MAX_PAGES)
    gate = asyncio.Semaphore(section.concurrency)

    async def gated(start: int) -> dict:
        async with gate:
            return await page(start)

    rest = await asyncio.gather(*(gated(k * section.page_size) for k in range(1, pages)))
    tags: dict[str, str | None] = {}
    for data in (first, *rest):
        for item in data["Items"]:
            tags[norm_id(str(item.get("Id", "")))] = (item.get("ImageTags") or {}).get("Primary")
    return tags


def broken_posters(rows: list[dict], tags: dict[str, str | None]) -> dict[str, Counter]:
    """Rows (kind, item_id, tag) of the profile's `tags` query against the server's current tags →
    {kind: Counter(stale_tag | no_image | not_on_server)}."""
    out: dict[str, Counter] = {}
    for r in rows:
        kind, key = str(r["kind"]), norm_id(str(r["item_id"]))
        if key not in tags:
            problem = "not_on_server"
        elif tags[key] is None:
            problem = "no_image"
        elif r.get("tag") and r["tag"] != tags[key]:
            problem = "stale_tag"
        else:
            continue
        out.setdefault(kind, Counter())[problem] += 1
    return out


def poster_samples(app: str, missing_rows: list[dict], broken: dict[str, Counter]) -> tuple[list[Sample], str]:
    missing = Counter({str(r["kind"]): int(r.get("missing") or 0) for r in missing_rows})
    parts, samples = [], []
    for kind in sorted(set(missing) | set(broken)):
        detail = Counter({"without_poster": missing[kind]}) + broken.get(kind, Counter())
        total = sum(detail.values())
        samples.append(sample("caretaker_posters_missing", total, app=app, kind=kind))
        if total:
            parts.append(f"{kind} {total} (" + ", ".join(f"{n} {k.replace('_', ' ')}" for k, n in
                                                         sorted(detail.items()) if n) + ")")
    return samples, "; ".join(parts) or "none missing"


class PostersProbe(Probe):
    kind = "posters"

    def __init__(self, entry: DatabaseConfig | SQLiteConfig, profile: Profile, server: ServiceConfig | None,
                 deps):
        super().__init__(entry.name, entry.app.content_interval, entry.app.content_timeout)
        self.entry, self.profile, self.server, self.deps = entry, profile, server, deps
        self.section = load_profile("jellyfin").media_server if server is not None else None

    async def run(self) -> ProbeResult:
        posters = self.profile.posters
        assert posters is not None  # build() checks it
        now = self.deps.clock()
        try:
            async with open_app_db(self.entry) as db:
                params = query_params(self.entry, now)
                missing = await db.rows(posters.missing, **params)
                stored = await db.rows(posters.tags, **params) if posters.tags and self.section else []
        except Exception as exc:  # unreachable database or a broken query
            return ProbeResult(ok=False, reason=describe_db_error(exc))
        reason, broken = "", {}
        if self.server is not None and self.section is not None and stored:
            try:
                tags = await current_tags(self.deps.http, self.server, self.section, self.timeout)
                broken = broken_posters(stored, tags)
            except ApiError as exc:  # the app's own count still stands; say what could not be compared
                reason = f"media server: {exc}"
        samples, summary = poster_samples(self.target, missing, broken)
        return ProbeResult(samples, ok=not reason, reason=reason, summary=summary)


def build(config: Config, deps) -> list[Probe]:
    return [PostersProbe(entry, profile, media_server(config, entry), deps)
            for entry, profile in app_entries(config) if profile.posters is not None]
