// Builds the shared precompiled header for the test binaries.
