//! The network as text: PyTorch constructor calls or PyTorch's own `print(model)`.
