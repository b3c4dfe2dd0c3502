"""The plain sentences a teacher can read out, one entry per view."""

EXPLAIN = {
    "moons": (
        "Each panel is one active-learning method working on the same two-moons data, starting from the same "
        "random labels. Filled, outlined dots are labeled; faint dots are unlabeled; black crosses are what the "
        "method asks to label next. The solid line is where the model is 50/50 between the classes, the dashed line "
        "is where a model trained on every label would put it."
    ),
    "pick": (
        "Your turn: drag a box or a lasso over the unlabeled points you would label next. The table compares your "
        "batch with each method's: how many picks you share, how close the picks are to the model's boundary "
        "(uncertain points), and how spread out they are (diverse points)."
    ),
    "explorer": (
        "The same stage-by-stage loop on images. Every method starts from the same labeled images; each Step trains "
        "the models, asks each method for a batch of images to label, and adds them. The gallery shows what each "
        "method picked, with the true label and the method's score; for segmentation, each picked image beside its "
        "true mask and the mask the model predicted before the pick was labeled."
    ),
    "feature_map": (
        "Each dot is an image (or point) placed by how the model sees it: nearby dots look alike to the model. "
        "Outlined dots are labeled, faint ones unlabeled, crosses are this stage's picks. The right map adds the "
        "VAE's view of each sample, weighted by alpha, as the VAE-augmented methods do."
    ),
    "discriminator": (
        "VAAL and TA-VAAL train a discriminator to tell labeled from unlabeled samples. They pick the samples it is "
        "most sure are unlabeled: everything left of the red cut-off line. A narrow peak means the discriminator "
        "sees little difference between samples; TA-VAAL's extra input, the predicted loss, spreads them out."
    ),
    "loss": (
        "Does the discriminator point at the samples the model gets wrong? Each dot is an unlabeled candidate: across, "
        "the discriminator's belief that it is labeled; up, the model's real loss on it (known here only because we "
        "peek at the hidden labels). A negative Spearman rho means low likelihood goes with high loss."
    ),
    "ranker": (
        "The Ranker (or loss head) guesses how wrong the model is on each sample without seeing its label. A rho "
        "near +1 means it ranks the samples like their real losses."
    ),
    "balance": (
        "Are the labels balanced across classes? The bars show the class entropy of the labeled set at each stage: "
        "1 means every class has the same share, lower means some classes dominate. Below, each method's labeled set "
        "is compared class by class with the whole pool."
    ),
    "curves": (
        "Test accuracy (for segmentation: mean IoU, the overlap of predicted and true regions averaged over classes) "
        "after each stage, against the number of labels spent. A method is better when its line is higher for the "
        "same number of labels. The lower panel shows the gain over random picking."
    ),
    "what_if": (
        "What would every method pick right now, from exactly the same labeled set? This trains each method's models "
        "on the current state without changing the session. Methods that agree share many picks in the table."
    ),
}
