//! The built-in list of secret paths: never visible in a sandbox, even when a parent directory is
//! bound, unless a profile names one in `filesystem.expose_secrets` (reported loudly).
//!
//! `~` is the home directory, `{uid}` the user's uid. A `*` is allowed in the last component only.

/// Secret paths. Keep sorted by area; each line says what lives there.
pub const SECRET_PATHS: &[&str] = &[
    "~/.ssh",                               // ssh keys, agent config, known_hosts
    "~/.gnupg",                             // GPG keys
    "~/.aws",                               // AWS credentials
    "~/.azure",                             // Azure CLI tokens
    "~/.config/gcloud",                     // Google Cloud credentials
    "~/.kube",                              // Kubernetes configs with tokens
    "~/.docker/config.json",                // registry auth
    "~/.netrc",                             // plaintext passwords for curl, git, ftp
    "~/.git-credentials",                   // git credential store
    "~/.config/gh",                         // GitHub CLI token
    "~/.config/hub",                        // hub token
    "~/.config/git/credentials",            // git credential store (XDG)
    "~/.npmrc",                             // npm tokens
    "~/.pypirc",                            // PyPI tokens
    "~/.cargo/credentials",                 // crates.io token (old name)
    "~/.cargo/credentials.toml",            // crates.io token
    "~/.gem/credentials",                   // RubyGems key
    "~/.password-store",                    // pass
    "~/.local/share/keyrings",              // GNOME keyring
    "~/.age",                               // age keys
    "~/.config/age",                        // age keys (XDG)
    "~/.config/sops",                       // sops age keys
    "~/.config/rclone",                     // rclone remotes with tokens
    "~/.terraform.d/credentials.tfrc.json", // Terraform Cloud token
    "~/.vault-token",                       // HashiCorp Vault token
    "~/.claude.json",                       // Claude Code's state (may hold an OAuth account)
    "~/.claude/.credentials.json",          // Claude Code's credentials
    "~/.codex/auth.json",                   // Codex CLI credentials
    "~/.local/share/corral",                // corral's own: `corral login` keys, every project's agent state
    "~/.local/state/corral",                // corral's own: audit logs, review layers
    "~/.config/op",                         // 1Password CLI
    "~/.mozilla",                           // Firefox profiles: cookies, saved passwords
    "~/.config/google-chrome",              // Chrome profile
    "~/.config/chromium",                   // Chromium profile
    "~/.config/BraveSoftware",              // Brave profile
    "~/.config/microsoft-edge",             // Edge profile
    "~/.thunderbird",                       // mail
    "/var/lib/tailscale",                   // Tailscale node key
    "/run/user/{uid}",                      // ssh-agent, gpg-agent, D-Bus, Wayland sockets
    "/etc/ssh/ssh_host_*_key",              // host keys (normally unreadable anyway)
];
