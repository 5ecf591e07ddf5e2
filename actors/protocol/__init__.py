"""The wire: messages, the codec, resources and units."""
