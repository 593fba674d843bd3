"""The researchers' side: the dashboard, the sample browser, agreement and drift analytics,
the export pages, the Researchers role and the demo. Reads ``labeling`` and ``training``;
neither of them imports it. No models of its own."""
