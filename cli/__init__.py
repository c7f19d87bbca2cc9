"""`kb`: the command line, the topmost layer: it parses arguments, calls the library or the service, prints."""
