module github.com/pin/tftp/v3

go 1.26

require golang.org/x/net v0.57.0

require golang.org/x/sys v0.47.0 // indirect
