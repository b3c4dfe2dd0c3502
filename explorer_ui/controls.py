"""Controls with validation. Every value goes through ``ExperimentConfig`` (the one place for limits);
a ``ConfigError`` is shown by ``Form`` right under the control whose field it names, never as a traceback."""
from __future__ import annotations

from dataclasses import dataclass

import streamlit as st

from tavaal_core import ConfigError, ExperimentConfig, TavaalError, available_methods, get_strategy
from tavaal_core.config import DATASET_DEFAULTS, MODELS, SEGMENTATION_MODELS
from tavaal_core.data import dataset_info
from tavaal_core.strategies import method_label

from .source import Source, sources

# The methods a playground starts with (two moons and images alike): a baseline, a geometric method and the
# two adversarial ones the app is about.
DEFAULT_METHODS = ["random", "coreset", "vaal", "tavaal"]
MAX_STAGES = 30
MODEL_LABELS = {"mlp": "MLP", "cnn": "Small CNN (fast on a CPU)", "resnet18": "ResNet-18 (CIFAR stem)",
                "resnet18_imagenet": "ResNet-18 (ImageNet stem)", "encdec": "Small encoder-decoder (fast on a CPU)",
                "drn": "Dilated ResNet (DRN-C-26-like, GPU)"}


class Form:
    """Error slots under controls: ``form.slot("budget")`` after the budget widget; ``form.show(err)``
    fills the slot its ``field`` names (or the general slot at the form's top)."""

    def __init__(self, where=None):
        self.where = where if where is not None else st
        self.general = self.where.empty()
        self.slots: dict[str, object] = {}

    def slot(self, *fields: str) -> None:
        holder = self.where.empty()
        for f in fields:
            self.slots[f] = holder

    def show(self, error: Exception) -> None:
        field = getattr(error, "field", None)
        target = self.slots.get(field, self.general)
        target.error(str(error), icon=":material/error:")


def persisted(key: str, default):
    """The value a widget with ``key`` should start from: the last one chosen, kept across pages
    (streamlit forgets the state of widgets that a page does not draw)."""
    store = st.session_state.setdefault("_kept", {})
    if key in st.session_state and st.session_state[key] is not None:
        store[key] = st.session_state[key]
    return store.get(key, default)


def keep(key: str):
    """on_change callback that remembers a widget's value beyond its page."""
    def cb():
        st.session_state.setdefault("_kept", {})[key] = st.session_state[key]
    return cb


def remember(key: str, value) -> None:
    """Set a widget's value before it is drawn (a link being opened), and keep it beyond its page."""
    st.session_state[key] = value
    st.session_state.setdefault("_kept", {})[key] = value


def widget_default(key: str, default):
    """Seed a widget's state once (so widgets are created without ``value=`` and keep user changes)."""
    if key not in st.session_state:
        st.session_state[key] = persisted(key, default)


def methods_select(key: str, default: list[str], where=None, label: str = "Methods") -> list[str]:
    where = where if where is not None else st
    names = available_methods()
    widget_default(key, [m for m in default if m in names])
    return where.multiselect(
        label, names, key=key, format_func=method_label, on_change=keep(key),
        help="Every registered strategy. Each method gets its own learner; all start from the same labels.",
    )


def describe_methods(methods: list[str], where=None) -> None:
    """One sentence per chosen method (the registry's description and paper), in a closed expander."""
    where = where if where is not None else st
    if not methods:
        return
    where = where.expander("What do these methods do?")
    lines = []
    for m in methods:
        s = get_strategy(m)
        lines.append(f"**{s.label}**: {s.description}" + (f" *({s.paper})*" if s.paper else ""))
    if lines:
        where.caption("  \n".join(lines))


@dataclass
class Settings:
    """What the user asked for: a config (its ``method`` is ignored) and the methods to run side by side."""

    config: ExperimentConfig | None
    methods: list[str]
    values: dict | None = None  # the widget values (session-state key -> value) it was built from

    @property
    def signature(self) -> str:
        return (self.config.to_json() if self.config else "") + "|" + ",".join(self.methods)


def _number(where, label, key, default, min_value, max_value=None, step=1, help=None):
    widget_default(key, default)
    return where.number_input(label, min_value=min_value, max_value=max_value, step=step, key=key, help=help,
                              on_change=keep(key))


# The playground's settings: session-state key -> default. One place, used by the sidebar's widgets, by a
# link that reopens the playground (explorer_ui.links) and by the views' two-moons demo.
MOONS_DEFAULTS = {"moons_methods": DEFAULT_METHODS, "moons_noise": 0.2, "moons_n0": 500, "moons_n1": 50,
                  "moons_initial": 20, "moons_budget": 10, "moons_epochs": 100, "moons_vae_epochs": 50,
                  "moons_seed": 0}


def moons_config(values: dict) -> Settings:
    """Settings from playground values (keys of ``MOONS_DEFAULTS``; missing ones take the default).
    Raises ``TavaalError`` naming the bad field."""
    v = {**MOONS_DEFAULTS, **{k: x for k, x in values.items() if x is not None}}
    methods = list(v["moons_methods"])
    config = ExperimentConfig(
        dataset="moons", method=methods[0] if methods else "random",
        dataset_options=dict(n_per_class=(int(v["moons_n0"]), int(v["moons_n1"])), noise=float(v["moons_noise"]),
                             seed=int(v["moons_seed"])),
        initial_size=int(v["moons_initial"]), budget=int(v["moons_budget"]), stages=MAX_STAGES,
        task_epochs=int(v["moons_epochs"]), vae_epochs=int(v["moons_vae_epochs"]), seed=int(v["moons_seed"]),
    )
    if not methods:
        raise ConfigError("methods", "choose at least one method")
    return Settings(config, methods, v)


def moons_values() -> dict:
    """The playground's current values (the last chosen, kept across pages), without drawing a widget."""
    return {k: persisted(k, d) for k, d in MOONS_DEFAULTS.items()}


def moons_settings(where=None) -> tuple[Settings, Form]:
    """Sidebar controls of the two-moons playground."""
    where = where if where is not None else st.sidebar
    form = Form(where)
    d = MOONS_DEFAULTS
    methods = methods_select("moons_methods", d["moons_methods"], where)
    form.slot("methods", "method")
    describe_methods(methods, where)
    where.markdown("**Data**")
    widget_default("moons_noise", d["moons_noise"])
    where.slider("Noise", 0.0, 0.6, step=0.05, key="moons_noise", on_change=keep("moons_noise"),
                 help="Standard deviation of the Gaussian noise added to the two half-circles.")
    form.slot("noise")
    c1, c2 = where.columns(2)
    _number(c1, "Upper moon points", "moons_n0", d["moons_n0"], 1, 5000, help="Training points of class 0.")
    _number(c2, "Lower moon points", "moons_n1", d["moons_n1"], 1, 5000,
            help="Training points of class 1 (the paper's Figure 1 uses 500 and 50: imbalanced).")
    form.slot("n_per_class")
    where.markdown("**Active learning**")
    c1, c2 = where.columns(2)
    _number(c1, "Initial labels", "moons_initial", d["moons_initial"], 1, 10000,
            help="Random labeled set at stage 0, the same for every method.")
    _number(c2, "Picks per stage", "moons_budget", d["moons_budget"], 1, 5000, help="Budget b: samples labeled per stage.")
    form.slot("initial_size", "budget", "stages", "subset_factor")
    c1, c2 = where.columns(2)
    _number(c1, "Task epochs", "moons_epochs", d["moons_epochs"], 1, 2000, help="Epochs of the MLP each stage (paper: 100).")
    _number(c2, "VAE epochs", "moons_vae_epochs", d["moons_vae_epochs"], 1, 2000,
            help="Epochs of the VAE + discriminator (VAAL, TA-VAAL) each stage. The paper uses 100; "
                 "50 keeps a step under a second or two on a CPU.")
    form.slot("task_epochs", "vae_epochs")
    _number(where, "Seed", "moons_seed", d["moons_seed"], 0, 2**31 - 1,
            help="Same seed, same data, same initial labels, same picks.")
    form.slot("seed")
    values = {k: st.session_state.get(k) for k in MOONS_DEFAULTS}
    try:
        return moons_config(values), form
    except TavaalError as e:
        form.show(e)
        return Settings(None, list(methods)), form


def image_datasets() -> list[str]:
    from tavaal_core import available_datasets

    return [d for d in available_datasets() if dataset_info(d)["kind"] in ("image", "segmentation")]


def _dataset_options(where, name: str, form: Form) -> dict:
    """A control per loader option (dataset_info); seeds follow the session seed."""
    info = dataset_info(name)
    options = {}
    for opt, default in info["options"].items():
        key = f"img_opt_{name}_{opt}"
        if opt == "seed":
            continue
        if opt == "root":
            widget_default(key, str(default))
            layout = {"cityscapes": "Cityscapes' own layout (leftImg8bit/, gtFine/)"}.get(name, "torchvision's layout")
            options[opt] = where.text_input("Data folder (root)", key=key, on_change=keep(key),
                                            help=f"Folder holding the files in {layout}.")
        elif opt == "path":
            widget_default(key, "")
            options[opt] = where.text_input("Path to the .npz file", key=key, on_change=keep(key)) or None
        elif opt == "test_fraction":
            widget_default(key, float(default))
            options[opt] = where.slider("Test fraction", 0.05, 0.5, step=0.05, key=key, on_change=keep(key))
        elif opt == "download":
            continue  # offline by design; the message on a missing dataset says how to fetch it
        elif isinstance(default, bool):
            widget_default(key, default)
            options[opt] = where.checkbox(opt.replace("_", " "), key=key, on_change=keep(key))
        elif isinstance(default, int):
            widget_default(key, int(default))
            options[opt] = int(where.number_input(opt.replace("_", " "), min_value=1, step=1, key=key,
                                                  on_change=keep(key)))
        elif isinstance(default, str):
            widget_default(key, default)
            options[opt] = where.text_input(opt.replace("_", " "), key=key, on_change=keep(key))
        form.slot(opt)
    return options


IMAGE_DEFAULT_DATASET = "digits"
# The stage explorer's VAE for the small-CNN demos: 16 channels in the first conv (the core's default is 32,
# VAAL's reference VAE 128). A Step with VAAL and TA-VAAL on MNIST-5k spends most of its time training
# their VAEs; half the width costs about half (bench/bench_browser.py --page explorer). A visible setting.
DEMO_VAE_WIDTH = 16
# Where the core's defaults make a Step too slow for a class, the explorer's demo sizing per dataset (visible in
# the sidebar; a teacher with time to spare raises them). MNIST-5k with the four default methods, both cores
# (bench/bench_browser.py --page explorer --dataset mnist5k): VAAL and TA-VAAL set a Step's length, their VAE
# epochs and every method's task epochs most of it. Task epochs 20 instead of 30 left the accuracy as it was
# (random, seed 0: 0.799 / 0.873 / 0.906 at 100 / 200 / 300 labels against 0.811 / 0.872 / 0.905) for two
# thirds of the training; VAE epochs 5 instead of the core's 10 halve the VAE's share. On digits (Steps of
# 2.5-4 s) 20 epochs cost 1-3 points (python bench/bench_step.py --dataset digits), so it keeps the core's values.
DEMO_SIZING = {"mnist5k": dict(task_epochs=20, vae_epochs=5)}


def image_defaults(name: str) -> dict:
    """The stage explorer's settings for dataset ``name``: session-state key -> default (keys of the model,
    sizes and epochs are per dataset, so switching datasets keeps each one's choices)."""
    defaults = DATASET_DEFAULTS.get(name, DATASET_DEFAULTS["digits"])
    out = {"img_dataset": name, "img_methods": DEFAULT_METHODS, "img_imbalance": 1.0,
           f"img_model_{name}": defaults["model"], f"img_initial_{name}": defaults["initial_size"],
           f"img_budget_{name}": defaults["budget"],
           f"img_epochs_{name}": DEMO_SIZING.get(name, {}).get("task_epochs", min(defaults["task_epochs"], 30)),
           f"img_epochs_inc_{name}": 0,
           f"img_vae_epochs_{name}": DEMO_SIZING.get(name, {}).get("vae_epochs", defaults["vae_epochs"]),
           f"img_vae_width_{name}": DEMO_VAE_WIDTH if defaults["model"] == "cnn" else 32, "img_seed": 0,
           "img_random_init": False}
    for opt, default in dataset_info(name)["options"].items():
        if opt not in ("seed", "download"):
            out[f"img_opt_{name}_{opt}"] = str(default) if opt == "root" else default
    return out


def image_config(values: dict) -> Settings:
    """Settings from stage-explorer values (keys of ``image_defaults(values["img_dataset"])``; missing ones
    take the default). Raises ``TavaalError`` naming the bad field."""
    name = values.get("img_dataset") or IMAGE_DEFAULT_DATASET
    v = {**image_defaults(name), **{k: x for k, x in values.items() if x is not None}}
    methods = list(v["img_methods"])
    options = {opt: v[f"img_opt_{name}_{opt}"] for opt in dataset_info(name)["options"]
               if f"img_opt_{name}_{opt}" in v}
    if "path" in options and not options["path"]:
        options["path"] = None
    if "seed" in dataset_info(name)["options"]:
        options["seed"] = int(v["img_seed"])
    segmentation = dataset_info(name)["kind"] == "segmentation"
    ratio = 1.0 if segmentation else float(v["img_imbalance"])  # no class cuts for scenes
    model = v[f"img_model_{name}"]
    pretrained = None
    if model == "resnet18_imagenet":
        from tavaal_core.models.task import imagenet_weights_path

        if imagenet_weights_path() is None:  # absent weights: a random init only when the user said so
            pretrained = "none" if v["img_random_init"] else "imagenet"
    config = ExperimentConfig(
        dataset=name, method=methods[0] if methods else "random", dataset_options=options,
        imbalance_ratio=ratio if ratio > 1 else None, model=model, pretrained=pretrained,
        initial_size=int(v[f"img_initial_{name}"]), budget=int(v[f"img_budget_{name}"]), stages=MAX_STAGES,
        task_epochs=int(v[f"img_epochs_{name}"]), task_epochs_increment=int(v[f"img_epochs_inc_{name}"]),
        vae_epochs=int(v[f"img_vae_epochs_{name}"]), vae_width=int(v[f"img_vae_width_{name}"]), seed=int(v["img_seed"]),
    )
    if not methods:
        raise ConfigError("methods", "choose at least one method")
    return Settings(config, methods, v)


def image_values() -> dict:
    """The stage explorer's current values (the last chosen, kept across pages), without drawing a widget."""
    name = persisted("img_dataset", IMAGE_DEFAULT_DATASET)
    return {k: persisted(k, d) for k, d in image_defaults(name).items()}


def image_settings(where=None) -> tuple[Settings, Form]:
    """Sidebar controls of the stage explorer (image datasets)."""
    where = where if where is not None else st.sidebar
    form = Form(where)
    names = image_datasets()
    widget_default("img_dataset", IMAGE_DEFAULT_DATASET)
    name = where.selectbox("Dataset", names, key="img_dataset", on_change=keep("img_dataset"),
                           format_func=lambda d: d + ("" if dataset_info(d)["embedded"] else " (needs files)"))
    where.caption(dataset_info(name)["description"])
    form.slot("dataset")
    d = image_defaults(name)
    _dataset_options(where, name, form)
    methods = methods_select("img_methods", d["img_methods"], where)
    form.slot("methods", "method")
    describe_methods(methods, where)
    segmentation = dataset_info(name)["kind"] == "segmentation"
    if not segmentation:  # class cuts are for image classification; a scene holds every class
        widget_default("img_imbalance", d["img_imbalance"])
        where.number_input("Imbalance ratio", min_value=1.0, max_value=1000.0, step=1.0, key="img_imbalance",
                           on_change=keep("img_imbalance"),
                           help="1 = as is. r > 1 keeps 1/r of the first half of the classes (TA-VAAL's setting).")
    form.slot("imbalance_ratio", "class_counts")
    models = [m for m in MODELS if m != "mlp" and (m in SEGMENTATION_MODELS) == segmentation]
    widget_default(f"img_model_{name}", d[f"img_model_{name}"])
    where.selectbox("Task model", models, key=f"img_model_{name}", format_func=MODEL_LABELS.get,
                    on_change=keep(f"img_model_{name}"))
    form.slot("model")
    if st.session_state.get(f"img_model_{name}") == "resnet18_imagenet":
        from tavaal_core.models.task import imagenet_weights_path

        if imagenet_weights_path() is None:
            widget_default("img_random_init", False)
            where.checkbox("ImageNet weights are absent: start from a random initialisation",
                                    key="img_random_init", on_change=keep("img_random_init"),
                                    help="Nothing is downloaded here. Put torchvision's resnet18-f37072fd.pth under "
                                         "$TORCH_HOME/hub/checkpoints to use them.")
    form.slot("pretrained")
    c1, c2 = where.columns(2)
    _number(c1, "Initial labels", f"img_initial_{name}", d[f"img_initial_{name}"], 1, 100000)
    _number(c2, "Picks per stage", f"img_budget_{name}", d[f"img_budget_{name}"], 1, 100000)
    form.slot("initial_size", "budget", "stages", "subset_factor")
    c1, c2, c3 = where.columns(3)
    _number(c1, "Task epochs", f"img_epochs_{name}", d[f"img_epochs_{name}"], 1, 1000,
            help="Task-learner epochs at the first stage (TA-VAAL: 200 at every stage).")
    _number(c2, "+ per stage", f"img_epochs_inc_{name}", d[f"img_epochs_inc_{name}"], 0, 1000,
            help="Epochs added at each later stage (Godwin et al. 2022: 10 at the first stage, 5 more each stage).")
    _number(c3, "VAE epochs", f"img_vae_epochs_{name}", d[f"img_vae_epochs_{name}"], 1, 1000,
            help="VAE + discriminator epochs for VAAL / TA-VAAL (papers: 100; the demo default keeps a CPU "
                 "stage short).")
    form.slot("task_epochs", "task_epochs_increment", "vae_epochs")
    _number(where, "VAE width", f"img_vae_width_{name}", d[f"img_vae_width_{name}"], 1, 1024,
            help="Channels of the VAE's first conv layer (doubling at each layer). VAAL's reference VAE: 128; "
                 f"the core's default: 32; the demo: {DEMO_VAE_WIDTH}, so a Step with VAAL and TA-VAAL stays short "
                 "on a CPU.")
    form.slot("vae_width")
    _number(where, "Seed", "img_seed", d["img_seed"], 0, 2**31 - 1)
    form.slot("seed")
    values = {k: st.session_state.get(k) for k in d}
    try:
        settings = image_config(values)
        from tavaal_core.models.task import check_pretrained_weights

        check_pretrained_weights(settings.config.resolve())  # refused beside the control, before any Step
        return settings, form
    except TavaalError as e:
        form.show(e)
        return Settings(None, list(methods)), form


# -- view pickers -----------------------------------------------------------------------------------------
def source_picker(key: str = "view_source") -> Source | None:
    """Choose which session or opened run to look at (only those with at least one stage)."""
    available = {k: s for k, s in sources().items() if s.stages > 0}
    if not available:
        return None
    keys = list(available)
    current = persisted(key, keys[0])
    index = keys.index(current) if current in keys else 0
    if len(keys) == 1:
        st.session_state.setdefault("_kept", {})[key] = keys[0]
        return available[keys[0]]
    chosen = st.selectbox("Session", keys, index=index, key=key, format_func=lambda k: available[k].title,
                          on_change=keep(key))
    return available[chosen]


def stage_picker(source: Source, key: str = "view_stage", where=None) -> int:
    """A stage slider over the stages recorded (latest by default; follows new steps)."""
    where = where if where is not None else st
    n = source.stages
    if n <= 1:
        where.caption("Stage 0 (step more stages to compare them).")
        return 0
    kept = st.session_state.setdefault("_kept", {})
    seen = kept.get(f"{key}_seen", {})
    value = persisted(key, n - 1)
    if seen.get(source.key) != n:  # new stages arrived since last look: jump to the latest
        value = n - 1
        seen[source.key] = n
        kept[f"{key}_seen"] = seen
    value = min(int(value), n - 1)
    st.session_state[key] = value
    return where.slider("Stage", 0, n - 1, key=key, on_change=keep(key),
                        help="Replays a stored stage: nothing is recomputed.")


def pin_stage(source: Source, key: str, stage: int) -> None:
    """Show ``stage`` on the next ``stage_picker(source, key)`` (a link asked for it), even though the
    session just stepped (which would otherwise jump to the latest)."""
    kept = st.session_state.setdefault("_kept", {})
    kept.setdefault(f"{key}_seen", {})[source.key] = source.stages
    remember(key, max(0, min(int(stage), max(source.stages - 1, 0))))


def method_picker(source: Source, key: str, candidates: list[str] | None = None, label: str = "Method",
                  where=None, prefer: list[str] | None = None) -> str | None:
    """One method of ``source``; the first of ``prefer`` it has is the default."""
    where = where if where is not None else st
    names = [m for m in (candidates if candidates is not None else source.methods)]
    if not names:
        return None
    default = next((m for m in (prefer or []) if m in names), names[0])
    current = persisted(key, default)
    st.session_state[key] = current if current in names else default
    return where.selectbox(label, names, key=key, format_func=method_label, on_change=keep(key))


def methods_picker(source: Source, key: str, candidates: list[str] | None = None, label: str = "Methods",
                   where=None, default: list[str] | None = None) -> list[str]:
    where = where if where is not None else st
    names = candidates if candidates is not None else source.methods
    kept = persisted(key, default if default is not None else names)
    st.session_state[key] = [m for m in kept if m in names] or list(names)
    return where.multiselect(label, names, key=key, format_func=method_label, on_change=keep(key))
