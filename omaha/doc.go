// Package omaha will hold the Omaha updater and responder: following
// Flatcar/CoreOS release channels, mirroring signature-checked PXE images
// and proposing version bumps as git branches.
//
// Not built yet (issue 6); this file only reserves the package's place in
// the layout.
package omaha
