"""appkit-scaffold: add endpoints to, render and check services made from appkit's template."""
