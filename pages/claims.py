"""Paper claims: each qualitative claim of the two papers measured over seeds, with its verdict.

An audit runs the claim's setting for N seeds in a background process (``python -m tavaal_core claims``)
into an audit folder that doubles as the cache: a second visit reads it. Settings live in the URL
(``?claim=fig1&seeds=10&set=vae_epochs=50``)."""
import json

import streamlit as st

from explorer_ui import claims_view
from tavaal_core import audit, store
from tavaal_core.errors import ConfigError, TavaalError

st.title("Paper claims")
st.caption("Do the papers' qualitative claims hold on the data here? Each claim is measured over many seeds: "
           "per seed, whether the paper's ordering held; over seeds, the mean with a 95% confidence interval and "
           "a paired t-test. **Holds**: the ordering held in at least 80% of the seeds and p < 0.05. **Does not "
           "hold**: it held in at most half of them. **Mixed**: in between.")

names = list(audit.CLAIMS)
params = st.query_params


def _default_claim() -> str:
    return params.get("claim") if params.get("claim") in names else names[0]


# -- overview: every claim at its default setting, where measured -------------------------------------------------
def overview() -> None:
    rows = []
    for claim in audit.CLAIMS.values():
        setting = audit.SETTINGS[claim.setting]
        spec = audit.setting_spec(setting)
        done, total = claims_view.progress_of([spec])
        verdict = "not measured yet"
        if total and done == total:
            try:
                verdict = audit.cached_evaluate(claim, audit.audit_dir_for(spec), setting.seeds).verdict
            except TavaalError as e:
                verdict = f"unreadable: {e}"
        elif done:
            verdict = f"running or stopped ({done}/{total} stages)"
        rows.append({"claim": claim.name, "what": claim.title, "paper": claim.paper.split(" (")[0],
                     "setting": setting.name, "seeds": setting.seeds, "verdict": verdict})
    st.dataframe(rows, hide_index=True, width="stretch")


with st.expander("Every claim at its default setting", expanded=True, icon=":material/table:"):
    overview()

# -- one claim ----------------------------------------------------------------------------------------------------
name = st.selectbox("Claim", names, index=names.index(_default_claim()), key="claims_claim",
                    format_func=lambda n: f"{audit.CLAIMS[n].title}  ({audit.CLAIMS[n].paper.split(' (')[0]})")
claim = audit.CLAIMS[name]
setting = audit.SETTINGS[claim.setting]
st.caption(f"Measured on **{setting.name}**: {setting.description}. Methods: {', '.join(setting.methods)}.")

c1, c2 = st.columns([1, 3])
default_seeds = int(params.get("seeds", setting.seeds)) if str(params.get("seeds", "")).isdigit() else setting.seeds
seeds = c1.number_input("Seeds", min_value=2, max_value=100, value=max(2, min(100, default_seeds)), step=1,
                        key=f"claims_seeds_{name}")
default_sets = "\n".join(params.get_all("set")) if params.get_all("set") else ""
overrides_text = c2.text_area("Change the setting (one field=value per line)", value=default_sets, height=80,
                              key=f"claims_set_{name}",
                              help="Any config field, e.g. vae_epochs=50, kl_reduction=sum, "
                                   "discriminator_rank_input=raw, subset_factor=0, adversary_weight=2.")
overrides, spec = {}, None
try:
    for line in overrides_text.splitlines():
        if line.strip():
            field, value = audit.parse_assignment(line)
            overrides[field] = value
    spec = audit.setting_spec(setting, int(seeds), overrides)
except ConfigError as e:
    c2.error(str(e), icon=":material/error:")

params["claim"] = name
params["seeds"] = str(int(seeds))
params["set"] = [f"{k}={json.dumps(v) if not isinstance(v, str) else v}" for k, v in overrides.items()]

if spec is not None:
    key = audit.audit_key(spec) + f"-{int(seeds)}"
    run_dir = audit.audit_dir_for(spec)
    done, total = claims_view.progress_of([spec])
    busy = claims_view.running(key) or (store.is_run_dir(run_dir)
                                        and store.effective_state(store.read_status(run_dir), run_dir) == "running")
    failed = claims_view.failure(key)
    if failed:
        st.error(f"The audit stopped: {failed}", icon=":material/error:")

    if done < total and not busy:
        what = "Resume" if done else "Run"
        st.info(f"Not measured yet with these settings ({done}/{total} stages on disk). A two-moons audit takes "
                "seconds to a minute; a digits audit several minutes on a CPU.", icon=":material/info:")
        if st.button(f"{what} the audit ({int(seeds)} seeds)", type="primary", icon=":material/play_arrow:",
                     key="claims_run"):
            claims_view.start(key, name, int(seeds), overrides)
            st.rerun()

    @st.fragment(run_every=1.5 if busy else None)
    def follow() -> None:
        d, t = claims_view.progress_of([spec])
        still = claims_view.running(key) or (store.is_run_dir(run_dir) and
                                             store.effective_state(store.read_status(run_dir), run_dir) == "running")
        if still:
            st.progress(d / t if t else 0.0, text=f"Auditing in the background: {d}/{t} stages "
                                                   f"({len(spec.methods)} methods × {int(seeds)} seeds × "
                                                   f"{spec.stages} stages). You can leave this page.")
        elif busy:  # it just finished
            st.rerun(scope="app")

    follow()

    if total and done == total:
        try:
            result = audit.cached_evaluate(claim, run_dir, int(seeds), overrides)
        except TavaalError as e:
            st.error(f"The audit folder cannot be read: {e}")
        else:
            claims_view.show_result(result, key=f"claims_{name}")

    # -- setting table -------------------------------------------------------------------------------------------
    st.subheader("Where it holds and where it fails")
    resolved = spec.config.resolve()
    sweep_specs = {(f, json.dumps(v)): audit.setting_spec(setting, int(seeds), {**overrides, f: v})
                   for f, values in claim.sweeps.items() for v in values}
    sd, st_total = claims_view.progress_of(list(sweep_specs.values()))
    fields = ", ".join(f"{f} ∈ {{{', '.join(map(str, v))}}}" for f, v in claim.sweeps.items())
    st.caption(f"One setting changed at a time, the rest as above: {fields}. "
               f"{sd}/{st_total} stages on disk.")
    sweep_key = f"sweep-{key}"
    sweep_busy = claims_view.running(sweep_key) or any(
        store.is_run_dir(audit.audit_dir_for(sub))
        and store.effective_state(store.read_status(audit.audit_dir_for(sub)), audit.audit_dir_for(sub)) == "running"
        for sub in sweep_specs.values())
    if sd < st_total and not sweep_busy:
        if st.button("Run the setting table in the background", icon=":material/grid_on:", key="claims_sweep"):
            claims_view.start(sweep_key, name, int(seeds), overrides, claim.sweeps)
            st.rerun()
    elif sweep_busy:
        st.progress(sd / st_total if st_total else 0.0, text=f"Setting table, running in the background: "
                                                           f"{sd}/{st_total} stages (reload to update)")
    rows = []
    for (field, value), sub in sweep_specs.items():
        d, t = claims_view.progress_of([sub])
        value = json.loads(value)
        if value == getattr(resolved, field):
            value = f"{value} (as above)"
        if t and d == t:
            result = audit.cached_evaluate(claim, audit.audit_dir_for(sub), int(seeds), sub.notes["overrides"])
            for p in result.parts:
                rows.append({"claim": name, "field": field, "value": value, "claim_verdict": result.verdict,
                             "part": p.part.text, "verdict": p.verdict, "held": p.held,
                             "seeds": len(p.stages) if p.part.kind == "no_difference" else p.seeds,
                             "mean_difference": p.mean_difference, "p_value": p.p_value})
    if rows:
        import pandas as pd

        claims_view.sweep_section(claim, pd.DataFrame(rows), key=f"claims_{name}")
