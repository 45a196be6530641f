"""The `tickstream` command: local AWS from the template, producing, and the end-to-end demo."""
