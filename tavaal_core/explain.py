"""Why was this picked? Plain explanations of one sample's fate at one stage, from stored records only.

Pure functions over ``StageRecord``s (no model is run here): a sample's rank among the candidates, the
quantities that decided it for the method (the discriminator's output and the Ranker's ``r`` for VAAL /
TA-VAAL, predicted and real loss for learning loss, the greedy gain and the nearest labeled sample for
core-set / MedAL, entropy and BALD's two terms), its rank under other methods' records of the same state
(``compare_ranks``: feed it a what-if), and one sentence a teacher can read out.

    >>> exp = explain(record, index=412, labels=y, class_names=["upper", "lower"])
    >>> exp.sentence
    'TA-VAAL picked #412 (2nd of its 10 picks) because ...'
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .records import StageRecord

# The fate of a sample at a stage.
PICKED = "picked"
CANDIDATE = "candidate"  # scored, not picked
LABELED = "labeled"  # already labeled before the stage
NOT_CANDIDATE = "not a candidate"  # unlabeled, outside this stage's random candidate subset


@dataclass(frozen=True)
class Term:
    """One quantity that decided a sample's rank: its value and where it stands among the candidates."""

    name: str
    value: float
    note: str = ""  # e.g. "lower than 97% of the candidates"


@dataclass
class PickExplanation:
    index: int
    method: str
    stage: int
    status: str  # PICKED | CANDIDATE | LABELED | NOT_CANDIDATE
    rank: int | None  # 1 = the first the method would pick; None when not a candidate
    candidates: int  # how many candidates were scored
    budget: int  # how many were picked
    pick_order: int | None  # 1-based position in the batch, when picked
    score: float | None
    score_name: str
    higher_is_better: bool
    true_class: str | None = None
    terms: list[Term] = field(default_factory=list)
    sentence: str = ""

    @property
    def picked(self) -> bool:
        return self.status == PICKED


# -- ranking ----------------------------------------------------------------------------------------------
def ranking(record: StageRecord) -> np.ndarray:
    """The candidates in the order the method prefers them: its picks first, in pick order (greedy methods
    re-score after every pick, so their batch order is the truth), then the rest by score in the method's
    direction (``StageRecord.view_order``)."""
    return np.asarray(record.candidates, np.int64)[record.view_order()]


def rank_of(record: StageRecord, index: int) -> int | None:
    """1-based rank of dataset ``index`` among the record's candidates (None: not a candidate)."""
    order = ranking(record)
    hit = np.flatnonzero(order == int(index))
    return int(hit[0]) + 1 if hit.size else None


def status_of(record: StageRecord, index: int) -> str:
    index = int(index)
    if np.isin(index, record.selected):
        return PICKED
    if np.isin(index, record.candidates):
        return CANDIDATE
    if np.isin(index, record.labeled):
        return LABELED
    return NOT_CANDIDATE


def _gain(record: StageRecord, index: int) -> float | None:
    """The value that decided a pick (its greedy gain at its turn, or its score), None when not picked."""
    hit = np.flatnonzero(np.asarray(record.selected, np.int64) == int(index))
    gains = record.pick_gains
    return float(gains[hit[0]]) if hit.size and hit[0] < gains.size else None


def _at(record: StageRecord, name: str, index: int) -> float | None:
    """The per-candidate array ``name`` at dataset ``index`` (None when absent or not a candidate)."""
    values = getattr(record, name)
    cand = np.asarray(record.candidates, np.int64)
    if values.size != cand.size or not cand.size:
        return None
    pos = int(np.searchsorted(cand, int(index)))
    if pos >= cand.size or cand[pos] != int(index):
        return None
    return values[pos].item()


def share_below(values, value: float) -> float:
    """Fraction of finite ``values`` strictly below ``value``."""
    v = np.asarray(values, np.float64)
    v = v[np.isfinite(v)]
    return float((v < value).mean()) if v.size else float("nan")


def _standing(record: StageRecord, name: str, value: float, low_is_notable: bool) -> str:
    """Where ``value`` stands among the other candidates, on the side that matters for the method:
    'lower than all 519 other candidates', 'higher than 87% of the other candidates'."""
    values = np.asarray(getattr(record, name), np.float64)
    finite = values[np.isfinite(values)]
    if finite.size < 2 or not math.isfinite(value):
        return ""
    others = finite.size - 1  # the sample itself is among the candidates
    beaten = int((finite > value).sum()) if low_is_notable else int((finite < value).sum())
    word = "lower" if low_is_notable else "higher"
    if beaten >= others:
        return f"{word} than all {others} other candidates"
    if beaten == 0:  # at the other end (ties included)
        return f"the {'highest' if low_is_notable else 'lowest'} among the {finite.size} candidates"
    return f"{word} than {beaten / others:.0%} of the other candidates"


# -- the method families -----------------------------------------------------------------------------------
def family(method: str, record: StageRecord | None = None) -> str:
    """How a method decides: random | entropy | bald | loss | adversarial | distance | score."""
    from .errors import ConfigError
    from .strategies import get_strategy
    from .strategies.distance import _Greedy

    try:
        strategy = get_strategy(method)
    except ConfigError:  # a saved run of a method this version lacks: decide from what it recorded
        if record is not None and record.candidate_likelihood.size:
            return "adversarial"
        return "score"
    needs = strategy.needs
    if method == "random":
        return "random"
    if needs.vae in ("adversarial", "rank_conditioned"):
        return "adversarial"
    if isinstance(strategy, _Greedy) or (record is not None and record.greedy):
        return "distance"
    if needs.head != "none":
        return "loss"
    if needs.mc_dropout:
        return "bald"
    if method == "entropy":
        return "entropy"
    return "score"


def _label(method: str) -> str:
    from .strategies import method_label

    return method_label(method)


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def _fmt(x: float | None) -> str:
    if x is None or not math.isfinite(x):
        return "n/a"
    return f"{x + 0.0:.3g}"  # + 0.0: no "-0"


def _terms(record: StageRecord, index: int, fam: str, labels=None, class_names=None) -> list[Term]:
    """The quantities behind the score, for a candidate."""
    terms: list[Term] = []

    def add(name: str, field_name: str, low_is_notable: bool = False, label: str | None = None):
        value = _at(record, field_name, index)
        if value is not None:
            terms.append(Term(label or name, float(value), _standing(record, field_name, value, low_is_notable)))

    if fam == "adversarial":
        add("D output", "candidate_likelihood", low_is_notable=True,
            label="Discriminator: probability 'labeled'")
        add("r", "candidate_rank", label="Ranker's r = sigmoid(predicted loss)")
    elif fam == "loss":
        add("predicted loss", "candidate_predicted_loss", label="Predicted loss (l̂)")
    elif fam == "distance":
        gain = _gain(record, index)
        if gain is not None and math.isfinite(gain):
            terms.append(Term("Distance when picked (greedy gain)", float(gain)))
        else:
            add("score", "candidate_scores", label=record.score_name.capitalize() + " (at the last pick's turn)")
        nearest = _at(record, "candidate_nearest_labeled", index)
        if nearest is not None and nearest >= 0:
            note = ""
            if labels is not None:
                k = int(np.asarray(labels)[int(nearest)])
                note = f"class {class_names[k] if class_names is not None and k < len(class_names) else k}"
            terms.append(Term("Nearest labeled sample (index)", float(nearest), note))
    elif fam == "bald":
        add("BALD", "candidate_scores", label="Mutual information (BALD)")
        add("H", "candidate_entropy", label="Entropy of the mean prediction")
        add("E[H]", "candidate_expected_entropy", label="Mean entropy of each dropout pass")
    elif fam == "entropy":
        add("entropy", "candidate_scores", label="Predictive entropy")
    elif fam == "random":
        add("draw", "candidate_scores", label="Random draw")
    else:
        add("score", "candidate_scores", label=record.score_name.capitalize())
    if fam not in ("entropy", "bald"):
        add("entropy", "candidate_entropy", label="Model's uncertainty (entropy)")
    add("real loss", "candidate_loss", label="Real loss (uses the hidden label)")
    return terms


def _why(record: StageRecord, index: int, fam: str, exp: PickExplanation) -> str:
    """The reason part of a sentence about a picked sample."""
    def standing(field_name, low=False):
        v = _at(record, field_name, index)
        return v, _standing(record, field_name, v, low) if v is not None else ""

    if fam == "random":
        return ("it does not look at the samples at all: this one happened to draw one of the "
                f"{exp.budget} highest of {exp.candidates} random numbers")
    if fam == "entropy":
        v, where = standing("candidate_scores")
        return f"the model is unsure which class it is: the entropy of its prediction is {_fmt(v)}, {where}"
    if fam == "bald":
        mi, where = standing("candidate_scores")
        h = _at(record, "candidate_entropy", index)
        eh = _at(record, "candidate_expected_entropy", index)
        return (f"the model's dropout runs disagree about it: the averaged prediction is uncertain (entropy "
                f"{_fmt(h)}) while each run alone is surer ({_fmt(eh)}); the gap, {_fmt(mi)}, is {where}")
    if fam == "loss":
        v, where = standing("candidate_predicted_loss")
        return f"its loss head expects the model to get it wrong: predicted loss {_fmt(v)}, {where}"
    if fam == "adversarial":
        d, where = standing("candidate_likelihood", low=True)
        text = (f"its discriminator is sure it is unlabeled: it gives it a {_fmt(d)} probability of being "
                f"labeled, {where} (the method takes the lowest first)")
        r = _at(record, "candidate_rank", index)
        if r is not None:
            _, r_where = standing("candidate_rank")
            text += (f". The Ranker's r = {_fmt(r)} ({r_where}) was part of what the discriminator saw: a high r "
                     "means the task model is expected to do badly on it")
        return text
    if fam == "distance":
        gain = _gain(record, index)
        what = ("farthest from everything labeled" if record.method.startswith("coreset")
                else "farthest on average from the labeled set")
        text = (f"when its turn came it was the candidate {what} in the model's feature space "
                f"(squared distance {_fmt(gain)})")
        nearest = _at(record, "candidate_nearest_labeled", index)
        if nearest is not None and nearest >= 0:
            text += f"; its nearest labeled sample is #{int(nearest)}"
        return text
    v, where = standing("candidate_scores", low=not record.higher_is_better)
    return f"its {record.score_name} is {_fmt(v)}, {where}"


def explain(record: StageRecord, index: int, labels=None, class_names=None) -> PickExplanation:
    """Why ``record.method`` did (or did not) pick dataset ``index`` at ``record.stage``."""
    index = int(index)
    status = status_of(record, index)
    fam = family(record.method, record)
    name = _label(record.method)
    picks = np.asarray(record.selected, np.int64)
    rank = rank_of(record, index) if status in (PICKED, CANDIDATE) else None
    order = int(np.flatnonzero(picks == index)[0]) + 1 if status == PICKED else None
    score = _at(record, "candidate_scores", index)
    true_class = None
    if labels is not None and 0 <= index < len(labels):
        k = int(np.asarray(labels)[index])
        true_class = str(class_names[k]) if class_names is not None and k < len(class_names) else str(k)
    exp = PickExplanation(index, record.method, int(record.stage), status, rank, int(len(record.candidates)),
                          int(len(picks)), order, score, record.score_name, bool(record.higher_is_better),
                          true_class)
    if status in (PICKED, CANDIDATE):
        exp.terms = _terms(record, index, fam, labels, class_names)
    if status == PICKED:
        exp.sentence = (f"{name} picked #{index} ({_ordinal(order)} of its {exp.budget} picks at stage "
                        f"{record.stage}) because {_why(record, index, fam, exp)}.")
    elif status == CANDIDATE:
        last = picks[-1] if picks.size else None
        last_score = _at(record, "candidate_scores", int(last)) if last is not None else None
        if fam == "distance":
            reason = ("other candidates were farther from the labeled set (or from the picks made before "
                      "them) when each pick was made")
        elif fam == "random":
            reason = "its random draw was not high enough"
        else:
            reason = (f"its score ({record.score_name}) was {_fmt(score)}, not "
                      f"{'high' if record.higher_is_better else 'low'} enough: the last pick had {_fmt(last_score)}")
        exp.sentence = (f"{name} did not pick #{index}: it ranked {_ordinal(rank)} of {exp.candidates} candidates "
                        f"and only the first {exp.budget} are picked; {reason}.")
    elif status == LABELED:
        exp.sentence = (f"#{index} was already labeled before stage {record.stage}: the model trained on it, so "
                        f"{name} had no reason to ask for it.")
    else:
        exp.sentence = (f"#{index} was not among the {exp.candidates} candidates {name} scored at stage "
                        f"{record.stage}: each stage scores a random subset of the unlabeled pool.")
    return exp


def compare_ranks(records: dict[str, StageRecord], index: int) -> list[dict]:
    """The same sample under every method of one state (a what-if, or the stage-0 records, which all share
    the initial labels): one row per method with its rank, whether it was picked, and its score."""
    rows = []
    for method, record in records.items():
        status = status_of(record, index)
        rank = rank_of(record, index) if status in (PICKED, CANDIDATE) else None
        rows.append({"method": method, "status": status, "rank": rank, "candidates": int(len(record.candidates)),
                     "picked": status == PICKED, "score": _at(record, "candidate_scores", index),
                     "score_name": record.score_name})
    return rows


def same_state(records: dict[str, StageRecord]) -> bool:
    """Whether the records start from one labeled set and candidate subset (so their ranks compare)."""
    recs = list(records.values())
    return all(np.array_equal(np.sort(r.labeled), np.sort(recs[0].labeled))
               and np.array_equal(r.candidates, recs[0].candidates) for r in recs[1:])
