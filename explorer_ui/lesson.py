"""The guided lesson: the TA-VAAL story in six steps, each a view of a replay shipped in ``assets/lesson/``
(drawn instantly, nothing trained) with a short text for students new to active learning. A teacher who
changes a setting (seed, noise) gets the same stages recomputed live, with progress.

Replays are written by ``scripts/make_lesson_assets.py`` from ``REPLAYS`` below, with the app's own
default settings, so a step's "open on its page" link recomputes exactly the pictures of the replay."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import streamlit as st

from tavaal_core import TavaalError
from tavaal_core.replay import Replay, load_replay

from .source import Source, meta_for_config

ASSETS = Path(__file__).resolve().parent.parent / "assets" / "lesson"


@dataclass(frozen=True)
class ReplaySpec:
    """How a lesson replay is made: the app's settings for its page, the methods and the stages."""

    name: str
    title: str
    description: str
    page: str  # "moons" | "images": whose settings (controls.MOONS_DEFAULTS / image_defaults) it uses
    values: dict = field(default_factory=dict)  # settings changed from that page's defaults
    methods: tuple = ()
    stages: int = 6


REPLAYS = {
    "moons": ReplaySpec(
        "moons", "Lesson: two moons",
        "The playground's default two moons (TA-VAAL Figure 1: 500 + 50 points, noise 0.2), 20 initial labels, "
        "10 per stage, five methods.",
        "moons", {"moons_methods": ["random", "entropy", "coreset", "vaal", "tavaal"]},
        ("random", "entropy", "coreset", "vaal", "tavaal"), stages=6),
    "mnist5k": ReplaySpec(
        "mnist5k", "Lesson: MNIST-5k with VAE features",
        "MNIST-5k (real handwritten digits), core-set with and without the seed-004 VAE features.",
        "images", {"img_dataset": "mnist5k", "img_methods": ["coreset", "coreset_vae"]},
        ("coreset", "coreset_vae"), stages=3),
}


def spec_settings(spec: ReplaySpec, changes: dict | None = None):
    """The app's Settings for a replay (its page's defaults with the spec's and ``changes``' values)."""
    from . import controls

    values = {**spec.values, **(changes or {})}
    if spec.page == "moons":
        return controls.moons_config(values)
    return controls.image_config(values)


# -- the steps ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Step:
    slug: str
    title: str
    text: str
    replay: str
    view: str  # moons | discriminator | loss | balance | curves | feature_map
    methods: tuple
    stage: int | None = None  # None: the replay's last stage
    page: str = ""  # url path of the page that shows this view in full
    page_query: dict = field(default_factory=dict)


STEPS = (
    Step("random-vs-uncertainty", "Which points should we label?", """
A model learns from **labeled** examples, and labels are expensive: someone has to look at every sample.
**Active learning** spends them wisely. Train a model on the few labels you have, let a *method* choose which
unlabeled samples to label next, label them, train again. Each round is a **stage**.

Here: the two moons of the TA-VAAL paper (Figure 1). 500 points in the upper moon, only 50 in the lower one.
20 random points start labeled (outlined dots); each stage labels 10 more (black crosses = this stage's picks).
The solid line is where the model is 50/50; the dashed line is where a model trained on **every** label puts it.

* **Random** picks by chance, so its picks look like the data: mostly upper-moon points far from the boundary.
* **Entropy** asks the model and picks the points it is *least sure* about: right on its boundary.

Click a cross (or any point) to see why a method picked it.""",
         "moons", "moons", ("random", "entropy"), stage=3, page="moons"),
    Step("vaal-discriminator", "VAAL: learn what 'unlabeled' looks like", """
**VAAL** (Sinha et al., 2019) does not ask the task model at all. It trains a small **VAE**, a network that
squeezes every sample into a short code, and a **discriminator** that guesses from that code whether a sample
is labeled. VAAL then labels the samples the discriminator is surest are *unlabeled*: those least like
anything labeled so far.

The histograms show the discriminator's output (its probability that a sample is labeled) for the labeled set,
the unlabeled candidates and the picks. Everything left of the cut-off gets picked.

**TA-VAAL** (Kim et al., CVPR 2021) gives the discriminator one more input (next step). In the paper
(Figure 7b) VAAL's outputs bunch in a narrow peak while TA-VAAL's spread out: compare the two panels.""",
         "moons", "discriminator", ("vaal", "tavaal"), stage=3, page="discriminator"),
    Step("ranker", "What the Ranker adds", """
TA-VAAL adds a **Ranker** to the task model: a small head that learns to predict which samples the model will
get *wrong* (a high loss), without seeing their labels (the loss-prediction idea of Yoo & Kweon, 2019, trained
with a ranking loss). Its output, squashed to 0-1 and called **r**, is fed to the VAE and the discriminator,
so "looks unlabeled" and "the model will get it wrong" are mixed in one score.

Top: each candidate's real loss (we peek at the hidden labels, for teaching only) against the discriminator's
output. A negative Spearman rho means low likelihood goes with high loss: the picks are hard for the model
(paper Figure 8). Bottom: the Ranker's prediction against the real loss.""",
         "moons", "loss", ("vaal", "tavaal"), stage=3, page="loss"),
    Step("imbalance", "Imbalance: who gets labeled?", """
Real data is rarely balanced. These moons have **ten times** more upper points than lower ones, so a random
pick is a lower-moon point only about one time in eleven. A method that finds the rare class gives the model
more of what it lacks.

Top: the **class entropy** of each method's labeled set, stage by stage (1 = every class equally labeled,
lower = one class dominates). Bottom: each method's labeled set after this stage, class by class, next to the
whole pool.""",
         "moons", "balance", ("random", "entropy", "coreset", "vaal", "tavaal"), stage=5, page="class-balance"),
    Step("learning-curves", "Does it pay off?", """
The question that matters: **for the same number of labels, which method gives the better model?** Each line
is test accuracy after each stage, against the labels spent; the lower panel is the gain over random.

Careful: this is **one run with one seed** on a toy problem. Differences of a point or two can be luck: a
different seed can reverse them. A claim needs several seeds (the *Saved runs* page runs trials with shared
seeds and tests the differences), which is how the papers report their curves.""",
         "moons", "curves", ("random", "entropy", "coreset", "vaal", "tavaal"), page="learning-curves"),
    Step("vae-features", "A twist: add the VAE's view (Godwin et al., 2022)", """
Godwin et al. (SciPy 2022) asked whether a VAE trained **once, on all images, without labels** helps simpler
methods. **Core-set** picks samples far from everything labeled, measuring distance in the task model's
features. **Core-set + VAE** appends the VAE's code of each image, scaled by **alpha**, to those features.

Left: the task model's features of MNIST digits in 2-d (PCA); right: with the VAE's code appended. Colours are
the true digits; outlined = labeled; crosses = picks. Move **alpha**: at 0 both maps agree; as it grows, the
VAE's idea of which images look alike takes over. The paper does not report alpha: it is yours to choose.""",
         "mnist5k", "feature_map", ("coreset_vae",), page="feature-map"),
)


def step_query(index: int) -> dict[str, str]:
    """The URL query of lesson step ``index`` (0-based)."""
    return {"step": str(index + 1)}


# -- replays -------------------------------------------------------------------------------------------------
@st.cache_resource(show_spinner=False, max_entries=4)
def _load(name: str, mtime: float) -> Replay:
    return load_replay(ASSETS / name)


def replay(name: str) -> Replay | None:
    """The shipped replay ``name`` (None, with a message, when its files are missing or broken)."""
    path = (ASSETS / name).with_suffix(".json")
    if name not in REPLAYS or not path.is_file():
        return None
    try:
        return _load(name, path.stat().st_mtime)
    except TavaalError as e:
        st.error(f"The lesson's replay cannot be read: {e}. Regenerate it with "
                 "`python scripts/make_lesson_assets.py`.", icon=":material/broken_image:")
        return None


def _source(rep: Replay) -> Source:
    source = Source.from_records(f"lesson:{rep.name}", rep.title, rep.records, rep.config,
                                 meta=meta_for_config(rep.config))
    source.oracle = rep.oracle
    return source


def replay_source(name: str) -> Source | None:
    """The replay as a read-only Source (one per browser session, so its caches are its own)."""
    rep = replay(name)
    if rep is None:
        return None
    sources = st.session_state.setdefault("_lesson_sources", {})
    key = (name, id(rep))
    if key not in sources:
        sources[key] = _source(rep)
    return sources[key]
