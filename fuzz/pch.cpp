// Builds the fuzz targets' precompiled header.
