"""Golden-path project templates: ``pave new`` generates from them, ``pave upgrade`` merges new versions.

The table of templates is :data:`pave.templates.catalog.TEMPLATES`; each template is a copier
template in this package (``<name>/<version>/``).
"""

from pave.templates.catalog import TEMPLATES, TemplateInfo, get_template, list_templates
from pave.templates.generate import Upgrade, generate, upgrade

__all__ = ["TEMPLATES", "TemplateInfo", "Upgrade", "generate", "get_template", "list_templates", "upgrade"]
