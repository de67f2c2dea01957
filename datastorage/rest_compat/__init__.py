"""The legacy REST surface: routes that map HTTP onto the shared resolvers."""
