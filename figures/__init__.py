"""One script per paper-style figure or sweep."""
