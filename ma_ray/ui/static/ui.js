// Small touches only: every page works without it. A roll-back asks for confirmation first.
document.querySelectorAll("button.rollback").forEach((button) => {
  button.addEventListener("click", (event) => {
    if (!window.confirm("Roll the alias back to its previous version?")) event.preventDefault();
  });
});
