// Package updater keeps network-booted Flatcar and CoreOS images current
// through git.
//
// An Updater pass (Updater.Sync, run by "pxeops omaha sync" and inside
// serve by Updater.Run) asks an Omaha update service (through
// omaha.Client) what a machine of each tracked image would be offered,
// mirrors a newer release's PXE kernel and initrd into the
// content-addressed asset Store only after their OpenPGP signatures check
// out against the pinned Keyring (the repository's, the vendor's fetched
// and kept by Keyrings, or built in from keys/), edits
// images/<id>.yaml in place (EditImage), checks that the edited tree
// still loads (schema), and commits the change to a branch of its own for
// review (source/propose, the git layer discovery proposes through too).
// With omaha.rollout.stages a new release is proposed as a rollout beside
// the pinned version, moved through its stages once it has soaked on the
// census (Hosts, inside serve); a changed channel is followed to its
// release even when that is lower (rollout.go).
package updater
