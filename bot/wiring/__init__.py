"""The composition root: builds every collaborator of a process through constructors."""
