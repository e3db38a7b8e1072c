// The Swift API over CLive lands with issue 3.
@_exported import CLive
