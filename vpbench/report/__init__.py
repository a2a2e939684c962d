"""``bench report``: tables and figures from result folders."""
