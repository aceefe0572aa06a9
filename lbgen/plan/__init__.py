"""The resolved plan of the path: what every hop will actually do."""
