"""SafeSteer: category-specific safety steering by category vectors and by risk-category neurons.

Definitions (selectivity, median filter, neuron vector norm) are in ``README.md`` beside this
file and in each module's docstring. A run's steps: :mod:`.texts` (train answers, judged and
filtered), :mod:`.steering_set` (vectors and neurons), :mod:`.refusal`, :mod:`.evaluate`; the
job that runs and writes them is :mod:`workbench.jobs.safesteer`.
"""

from workbench.safesteer.data import CategoryData, load_category_data, text_tokens
from workbench.safesteer.evaluate import (
    Condition,
    SafeSteerSpec,
    conditions,
    evaluate_condition,
    steering_spec,
)
from workbench.safesteer.layers import scored_layers, steering_layers
from workbench.safesteer.neurons import (
    GroupStats,
    NeuronScores,
    cohens_d,
    heldout_check,
    jaccard_overlap,
    neuron_vector,
    refusal_alignment,
    score_neurons,
    stream_text_activations,
    welch_t,
    writeout_directions,
)
from workbench.safesteer.quality import bleu, relevance_scores, response_perplexity, rouge_l
from workbench.safesteer.refusal import landing_directions, refusal_directions
from workbench.safesteer.steering import add_category_vector, add_neuron_vector, scale_neurons
from workbench.safesteer.steering_set import SteeringSet, compute_steering
from workbench.safesteer.texts import build_texts, judge_labels, select_texts, training_responses
from workbench.safesteer.vectors import category_vector, median_filter_mask, text_attention_outputs

__all__ = ["CategoryData", "Condition", "GroupStats", "NeuronScores", "SafeSteerSpec",
           "SteeringSet", "add_category_vector", "add_neuron_vector", "bleu", "build_texts",
           "category_vector", "cohens_d", "compute_steering", "conditions", "evaluate_condition",
           "heldout_check", "jaccard_overlap", "judge_labels", "landing_directions",
           "load_category_data", "median_filter_mask", "neuron_vector", "refusal_alignment",
           "refusal_directions", "relevance_scores", "response_perplexity", "rouge_l",
           "scale_neurons", "score_neurons", "scored_layers", "select_texts", "steering_layers",
           "steering_spec", "stream_text_activations", "text_attention_outputs", "text_tokens",
           "training_responses", "welch_t", "writeout_directions"]
