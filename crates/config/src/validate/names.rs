//! The shapes of names: DNS labels (Kubernetes object names), DNS names and Linux interface
//! names. Each check returns the message to report when the name does not fit.

/// Linux interface names are at most 15 bytes (IFNAMSIZ - 1).
const MAX_INTERFACE_NAME: usize = 15;

/// RFC 1123 label, as Kubernetes names: lowercase letters, digits and '-', 1-63 characters,
/// starting and ending with a letter or digit.
pub(super) fn dns_label(name: &str) -> Result<(), String> {
    let fits = !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|byte| byte.is_ascii_lowercase() || byte.is_ascii_digit() || byte == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    if fits {
        Ok(())
    } else {
        Err(format!(
            "{name:?} is not a DNS label: 1-63 lowercase letters, digits or '-', starting and ending with a letter or digit"
        ))
    }
}

/// A DNS name of labels (letters, digits, '-', '_') separated by dots; a trailing dot is allowed.
pub(super) fn dns_name(name: &str) -> Result<(), String> {
    let trimmed = name.strip_suffix('.').unwrap_or(name);
    let fits = !trimmed.is_empty()
        && trimmed.len() <= 253
        && trimmed.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|byte| byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_')
        });
    if fits {
        Ok(())
    } else {
        Err(format!("{name:?} is not a DNS name such as db.example.com"))
    }
}

/// A name the kernel accepts for a network device.
pub(super) fn interface_name(name: &str) -> Result<(), String> {
    let fits = !name.is_empty()
        && name.len() <= MAX_INTERFACE_NAME
        && !name.contains(['/', ':'])
        && !name.chars().any(char::is_whitespace)
        && name != "."
        && name != "..";
    if fits {
        Ok(())
    } else {
        Err(format!(
            "{name:?} is not an interface name: 1-{MAX_INTERFACE_NAME} characters without '/', ':' or spaces"
        ))
    }
}
