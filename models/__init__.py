"""The models rtmer ships, installed as the package ``rtmer.models`` (see pyproject.toml).

Only the ``*.onnx`` files and their ``*.md`` cards go into the package; rtmer finds them with
``importlib.resources`` (``rtmer.core.model.resolve_model``).
"""
