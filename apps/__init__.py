"""The composition root: the ``genai`` CLI, and (as later issues land) the gateway process,
the Hub web UI and chatbot / agent app hosting. It wires every package together."""
