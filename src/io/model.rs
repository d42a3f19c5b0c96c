//! Model files: safetensors with PyTorch state_dict names and the spec in metadata.
