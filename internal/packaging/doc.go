// Package packaging tests the files in packaging/ as their consumers use
// them: the systemd unit with systemd-analyze, the Kubernetes example's
// security settings and its fleet as the kubelet would mount it, and the
// image built with podman and run with a read-only root and every
// capability dropped. It has no code of its own.
package packaging
