"""The local stack: moto, a Zendesk sandbox, chalice local and a stream poller."""
