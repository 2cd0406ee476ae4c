<?xml version="1.0"?>
<!-- kamailio-ice: DocBook to one XHTML page for `lynx -dump`, the way
     Kamailio renders its modules' README files (make doc). The docbook-xsl
     stylesheet is found through the system XML catalog (/etc/xml/catalog,
     Debian package docbook-xsl). -->
<xsl:stylesheet xmlns:xsl="http://www.w3.org/1999/XSL/Transform" version="1.0">
	<xsl:import href="http://docbook.sourceforge.net/release/xsl/current/xhtml/docbook.xsl"/>

	<xsl:output method="xml" encoding="UTF-8" indent="no"/>
	<!-- numbered sections: 1. Admin Guide, 1.1 ..., 4.2. port_max -->
	<xsl:param name="section.autolabel">1</xsl:param>
	<xsl:param name="section.label.includes.component.label">1</xsl:param>
	<!-- one table of contents, for the book, down to the parameters -->
	<xsl:param name="generate.toc">book toc,title,example</xsl:param>
	<xsl:param name="toc.section.depth">4</xsl:param>
	<xsl:param name="generate.section.toc.level">0</xsl:param>
	<!-- no CSS, no links: text output -->
	<xsl:param name="html.stylesheet"></xsl:param>
	<xsl:param name="css.decoration">0</xsl:param>
	<xsl:param name="ulink.target"></xsl:param>
	<xsl:param name="use.viewport">0</xsl:param>
	<!-- stable output: no generation date or generator meta -->
	<xsl:param name="generate.meta.abstract">0</xsl:param>
	<xsl:template name="head.content.generator"/>
</xsl:stylesheet>
