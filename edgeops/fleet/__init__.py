"""The fleet side: what the devices of a fleet report over MQTT (``edgeops fleet status|watch``)."""
