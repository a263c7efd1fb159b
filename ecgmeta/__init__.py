"""Few-shot ECG question answering and ECG representation learning, meta-trained over a frozen LLM

Modules:

- `ecgmeta.fusion`: Fusion modules that map ECG encoder tokens to LLM embeddings, and `ECGLanguageModel`: a frozen causal LLM (optional LoRA) reading `<ecg>` placeholders filled LLaVA-style, with teacher-forced loss, real generation and candidate scoring.
- `ecgmeta.llm`: Load SmolLM2-135M or Gemma-3-270M from their PyPI packages without a network, convert them once from GGUF to safetensors, and build tiny random LLaMA / Gemma3 models for fast tests.
- `ecgmeta.multimodal`: ECG-text contrastive pretraining with zero-shot classification, tolerance to missing leads and noise, single-lead self-alignment and nearest-neighbour retrieval, each measured against the plain encoder."""

__version__ = "0.1.0"
