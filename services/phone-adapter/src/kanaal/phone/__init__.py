"""The telephone adapter: Generic CTI call events, IVR subjects, missed-call callbacks."""
