"""outbound-transformer: Genesys agent messages → Graph API sends, with state and the 24 h window."""
