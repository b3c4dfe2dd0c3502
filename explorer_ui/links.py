"""Links that reopen the same state: every page keeps its settings, methods, seed and stage in the URL.

A page declares its parameters (``Param``: the name in the URL, the session-state key of its widget, how to
read it and its allowed values). At the top of the page ``incoming(page)`` returns the query of a link that
was just opened (once per distinct URL; the page's own updates do not count), ``apply`` writes its values
into the widgets' state (a bad value is refused with a message naming the parameter and its allowed values,
never a traceback), and at the end ``publish`` writes the page's current values into the address bar and
draws the "Copy link" button. Opening the link in a new browser recomputes the session up to the stage
(``play.restore``), deterministic from the seed, and shows the same picture.
"""
from __future__ import annotations

import html
import json
import math
from dataclasses import dataclass
from typing import Any, Callable
from urllib.parse import urlencode

import streamlit as st

SEEN_KEY = "_links_seen"
PRESENT = "present"  # presenter mode, on every page


@dataclass(frozen=True)
class Param:
    """One URL parameter bound to a widget's session-state key."""

    name: str
    key: str
    kind: str  # "int" | "float" | "str" | "list" | "bool"
    low: float | None = None
    high: float | None = None
    choices: Callable[[], list] | None = None

    def parse(self, text: str) -> Any:
        """The value of ``text``; raises ``ValueError`` with a message naming the parameter."""
        if self.kind == "list":
            items = [t for t in text.split(",") if t]
            allowed = self.choices() if self.choices else None
            bad = [t for t in items if allowed is not None and t not in allowed]
            if bad:
                raise ValueError(f"`{self.name}`: unknown {', '.join(bad)}; allowed: {', '.join(allowed)}")
            return items
        if self.kind == "bool":
            if text not in ("0", "1", "true", "false"):
                raise ValueError(f"`{self.name}` must be 0 or 1, got {text!r}")
            return text in ("1", "true")
        if self.kind == "str":
            allowed = self.choices() if self.choices else None
            if allowed is not None and text not in allowed:
                raise ValueError(f"`{self.name}`: unknown value {text!r}; allowed: {', '.join(map(str, allowed))}")
            return text
        try:
            value = int(text) if self.kind == "int" else float(text)
        except ValueError:
            raise ValueError(f"`{self.name}` must be a {'whole ' if self.kind == 'int' else ''}number, "
                             f"got {text!r}") from None
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"`{self.name}` must be a finite number, got {text!r}")
        if (self.low is not None and value < self.low) or (self.high is not None and value > self.high):
            raise ValueError(f"`{self.name}` must be between {self.low:g} and {self.high:g}, got {text}")
        return value

    def format(self, value: Any) -> str:
        if self.kind == "list":
            return ",".join(map(str, value))
        if self.kind == "bool":
            return "1" if value else "0"
        if self.kind == "float":
            return f"{float(value):g}"
        return str(value)


def _methods() -> list[str]:
    from tavaal_core import available_methods

    return available_methods()


MOONS_PARAMS = (
    Param("methods", "moons_methods", "list", choices=_methods),
    Param("noise", "moons_noise", "float", 0.0, 0.6),
    Param("n0", "moons_n0", "int", 1, 5000), Param("n1", "moons_n1", "int", 1, 5000),
    Param("initial", "moons_initial", "int", 1, 10000), Param("budget", "moons_budget", "int", 1, 5000),
    Param("epochs", "moons_epochs", "int", 1, 2000), Param("vae_epochs", "moons_vae_epochs", "int", 1, 2000),
    Param("seed", "moons_seed", "int", 0, 2**31 - 1),
)


def image_params(dataset: str) -> tuple[Param, ...]:
    """The stage explorer's parameters; the widgets of sizes and epochs are per dataset."""
    from tavaal_core.config import MODELS
    from tavaal_core.data import dataset_info

    from .controls import image_datasets

    params = [
        Param("dataset", "img_dataset", "str", choices=image_datasets),
        Param("methods", "img_methods", "list", choices=_methods),
        Param("imbalance", "img_imbalance", "float", 1.0, 1000.0),
        Param("model", f"img_model_{dataset}", "str", choices=lambda: [m for m in MODELS if m != "mlp"]),
        Param("initial", f"img_initial_{dataset}", "int", 1, 100000),
        Param("budget", f"img_budget_{dataset}", "int", 1, 100000),
        Param("epochs", f"img_epochs_{dataset}", "int", 1, 1000),
        Param("epochs_inc", f"img_epochs_inc_{dataset}", "int", 0, 1000),
        Param("vae_epochs", f"img_vae_epochs_{dataset}", "int", 1, 1000),
        Param("vae_width", f"img_vae_width_{dataset}", "int", 1, 1024),
        Param("seed", "img_seed", "int", 0, 2**31 - 1),
        Param("random_init", "img_random_init", "bool"),
    ]
    for opt, default in dataset_info(dataset)["options"].items():
        key = f"img_opt_{dataset}_{opt}"
        if opt == "test_fraction":
            params.append(Param(opt, key, "float", 0.05, 0.5))
        elif opt in ("root", "path", "task"):
            params.append(Param(opt, key, "str"))
        elif isinstance(default, bool) and opt != "download":
            params.append(Param(opt, key, "bool"))
        elif isinstance(default, int) and opt != "seed":
            params.append(Param(opt, key, "int", 1, 100000))
    return tuple(params)


def source_params(src: str, query: dict | None = None) -> tuple[Param, ...]:
    """The parameters that rebuild the session a view draws from (``src`` = the source's key)."""
    if src == "moons":
        return MOONS_PARAMS
    if src == "images":
        from .controls import IMAGE_DEFAULT_DATASET, persisted

        dataset = (query or {}).get("dataset") or persisted("img_dataset", IMAGE_DEFAULT_DATASET)
        return image_params(dataset)
    return ()


STAGE = Param("stage", "", "int", 0, 10000)
STEPPED = Param("stepped", "", "int", 0, 10000)


def _projections() -> list[str]:
    from tavaal_core.embedding import PROJECTIONS

    return list(PROJECTIONS)


# The view pages' own parameters (their source's come from ``source_params``; ``stage`` is pinned apart).
VIEW_PARAMS = {
    "feature-map": (Param("method", "fmap_method", "str", choices=_methods),
                    Param("projection", "fmap_projection", "str", choices=_projections),
                    Param("alpha", "fmap_alpha", "float", 0.0, 4.0)),
    "discriminator": (Param("methods", "disc_methods", "list", choices=_methods),),
    "loss": (Param("methods", "loss_methods", "list", choices=_methods),),
    "class-balance": (Param("methods", "balance_methods", "list", choices=_methods),),
    "learning-curves": (Param("methods", "curve_methods", "list", choices=_methods),),
    "what-if": (Param("base", "whatif_base", "str", choices=_methods),
                Param("methods", "whatif_methods", "list", choices=_methods)),
}


# -- reading a link --------------------------------------------------------------------------------------
def _seen() -> dict:
    return st.session_state.setdefault(SEEN_KEY, {})


def incoming(page: str) -> dict[str, str] | None:
    """The query of a link just opened on ``page`` (once per distinct query), else None."""
    query = st.query_params.to_dict()
    seen = _seen()
    if not query or seen.get(page) == query:
        return None
    seen[page] = query
    return query


def apply(params, query: dict[str, str], where=None) -> dict[str, Any]:
    """Write the link's values into the widgets' state (and the values kept across pages). Refused values
    are reported under the page title, naming the parameter and what it allows. Returns what was applied."""
    from .controls import remember

    applied, problems = {}, []
    for p in params:
        if p.name not in query:
            continue
        try:
            value = p.parse(query[p.name])
        except ValueError as e:
            problems.append(str(e))
            continue
        applied[p.name] = value
        if p.key:
            remember(p.key, value)
    if problems:
        (where or st).warning("This link holds values the app cannot use; they were left at their current "
                              "setting: " + "; ".join(problems), icon=":material/link_off:")
    return applied


def parse_one(param: Param, query: dict[str, str] | None, where=None):
    """One parameter of an incoming link (None when absent or refused, with a message)."""
    if not query or param.name not in query:
        return None
    try:
        return param.parse(query[param.name])
    except ValueError as e:
        (where or st).warning(f"This link's {e}.", icon=":material/link_off:")
        return None


# -- writing a link --------------------------------------------------------------------------------------
def values_of(params) -> dict[str, str]:
    """URL text of each parameter's current widget value (kept values when the widget is not drawn)."""
    from .controls import persisted

    out = {}
    for p in params:
        value = st.session_state.get(p.key)
        if value is None:
            value = persisted(p.key, None)
        if value is not None:
            out[p.name] = p.format(value)
    return out


def publish(page: str, query: dict[str, str], copy_button: bool = True, where=None) -> str:
    """Put ``query`` (plus presenter mode) in the address bar and draw the Copy link button; returns the
    link. The page's own update is remembered so it is not taken for an incoming link."""
    query = {k: str(v) for k, v in query.items() if v is not None and v != ""}
    if presenting():
        query[PRESENT] = "1"
    if st.query_params.to_dict() != query:
        st.query_params.from_dict(query)
    _seen()[page] = query
    link = link_for(query)
    if copy_button:
        copy_link_button(link, where)
    return link


def link_for(query: dict[str, str]) -> str:
    """This page's address with ``query`` (``st.context.url`` holds the page path, no query)."""
    base = st.context.url or ""
    return base + ("?" + urlencode(query) if query else "")


def copy_link_button(link: str, where=None) -> None:
    """A button that copies ``link`` to the clipboard (the address bar holds it too)."""
    body = (f'<button class="tavaal-copy-link" type="button" data-link="{html.escape(link, quote=True)}" '
            'title="Copy a link that reopens this page with these settings, methods, seed and stage">'
            f'{_LINK_ICON} Copy link</button>' + _COPY_SCRIPT)
    (where or st).html(body, unsafe_allow_javascript=True)


# A chain-link glyph drawn inline (headless browsers and some projector laptops lack an emoji font).
_LINK_ICON = ('<svg aria-hidden="true" width="15" height="15" viewBox="0 0 24 24" fill="none" stroke="currentColor" '
              'stroke-width="2.2" stroke-linecap="round" style="vertical-align:-2px;margin-right:4px">'
              '<path d="M10 13a5 5 0 0 0 7.07 0l3-3a5 5 0 0 0-7.07-7.07l-1.5 1.5"/>'
              '<path d="M14 11a5 5 0 0 0-7.07 0l-3 3a5 5 0 0 0 7.07 7.07l1.5-1.5"/></svg>')

# One delegated listener for every Copy link button (installed once per browser tab). The clipboard API
# needs a secure context (https or localhost); elsewhere the old execCommand path, then a prompt.
_COPY_SCRIPT = """<script>
if (!window.__tavaalCopyLink) {
  window.__tavaalCopyLink = true;
  document.addEventListener("click", async (event) => {
    const button = event.target.closest && event.target.closest("button.tavaal-copy-link");
    if (!button) return;
    const link = button.dataset.link;
    let ok = false;
    try { await navigator.clipboard.writeText(link); ok = true; } catch (e) {}
    if (!ok) {
      const area = document.createElement("textarea");
      area.value = link; document.body.appendChild(area); area.select();
      try { ok = document.execCommand("copy"); } catch (e) {}
      area.remove();
    }
    if (!ok) { window.prompt("Copy this link:", link); return; }
    button.dataset.copied = link;
    const label = button.innerHTML;
    button.innerHTML = "Link copied";
    setTimeout(() => { button.innerHTML = label; }, 1800);
  });
}
</script>"""


def query_of(params, values: dict) -> dict[str, str]:
    """URL text of ``values`` (session-state key -> value) for the parameters bound to those keys."""
    return {p.name: p.format(values[p.key]) for p in params if values.get(p.key) is not None}


class PageLink:
    """A page's title row with its Copy link button, and the link it was opened with.

    >>> link = PageLink("discriminator", "Discriminator")   # at the top of the page
    >>> link.apply(params)                                  # before the widgets
    >>> link.publish({...})                                 # once the page knows its state
    """

    def __init__(self, page: str, title: str):
        from .views import PAGE_KEY

        st.session_state[PAGE_KEY] = page
        self.page = page
        left, right = st.columns([5, 1], vertical_alignment="bottom")
        left.title(title)
        self.slot = right.empty()
        self.query = incoming(page)
        self.published = False

    def apply(self, params) -> dict:
        return apply(params, self.query) if self.query else {}

    def get(self, param: Param):
        return parse_one(param, self.query)

    def text(self, name: str) -> str | None:
        return (self.query or {}).get(name)

    def publish(self, query: dict[str, str]) -> str:
        self.published = True
        return publish(self.page, query, where=self.slot)


# -- presenter mode -------------------------------------------------------------------------------------
def presenting() -> bool:
    return bool(st.session_state.get("presenter", False))


def presenter_changed() -> None:
    """The toggle moved: the address bar follows on this rerun (``publish``); nothing else to do."""


def init_presenter() -> bool:
    """Presenter mode from the URL on a fresh session (``present=1``); the sidebar toggle changes it."""
    if "presenter" not in st.session_state:
        st.session_state["presenter"] = st.query_params.get(PRESENT) in ("1", "true")
    return presenting()


def state_json(query: dict[str, str]) -> str:
    """A stable text of a query (tests and logs)."""
    return json.dumps(query, sort_keys=True)
