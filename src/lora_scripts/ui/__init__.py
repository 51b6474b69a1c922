"""The web UI's foundations: the workspace it is confined to, its messages in English and Chinese, the train
form generated from config/, and presets. The server and pages are built on top of these (issue 12)."""
