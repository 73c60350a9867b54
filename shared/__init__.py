"""Code shared by every floorwatch service: events, settings, plumbing, queueing math."""
